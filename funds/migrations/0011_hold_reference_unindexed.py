"""A hold's `reference` loses its index: no query looks a hold up by its reference (a reward names its hold by id,
the ledger transactions carry the same reference with an index of their own), and every reward's hold wrote an
entry in it: 5,000 per bulk chunk. bench/pg_writes.py, alternating bulk chunks between two schemas: −3 % of a
chunk's PostgreSQL CPU (B/A median 0.972 over 11 pairs; an unchanged schema gives 0.98–1.0, so at the edge of
what it resolves).

An explicit DROP INDEX (RunSQL, which platform_migrate can replay in other schemas), as batches 0008: AlterField
finds the index to drop by introspection, which finds nothing on the empty schema tenant provisioning collects
its SQL from.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0010_rollups_note_plain"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS funds_hold_reference_ade8f227;",
            "CREATE INDEX IF NOT EXISTS funds_hold_reference_ade8f227 ON funds_hold (reference);",
            state_operations=[
                migrations.AlterField(
                    model_name="hold",
                    name="reference",
                    field=models.CharField(blank=True, max_length=100),
                ),
            ],
        ),
    ]
