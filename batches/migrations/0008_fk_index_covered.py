"""Batch rows lose the index on `batch_id` alone: the (batch_id, row_number) unique index serves every lookup by
batch (and the foreign key's cascade), and each uploaded row writes one index less, again when a chunk marks it.

An explicit DROP INDEX (RunSQL, which platform_migrate can replay in other schemas): AlterField finds the index
to drop by introspection, which finds nothing on the empty schema that tenant provisioning collects its SQL from
(tenants.provisioning), so new tenants would have kept it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0007_due_approvals"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS batches_batchrow_batch_id_b9015355;",
            "CREATE INDEX IF NOT EXISTS batches_batchrow_batch_id_b9015355 ON batches_batchrow (batch_id);",
            state_operations=[
                migrations.AlterField(
                    model_name="batchrow",
                    name="batch",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="batch_rows",
                        to="batches.batch",
                    ),
                ),
            ],
        ),
    ]
