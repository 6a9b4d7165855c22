"""A batch row keeps its reward's id without a foreign key constraint or a unique index (batches.models.BatchRow):
each chunk wrote 5,000 entries in the unique index and PostgreSQL checked 5,000 foreign keys at its COMMIT, for a
link that the chunk's own conditional UPDATE sets once, to a reward created in the same transaction, whose id is
new for each row. bench/pg_writes.py, alternating chunks between two schemas: -8 % of a chunk's PostgreSQL CPU.

RunSQL with the field's state: the names are PostgreSQL's and Django's, the same in every schema.
"""

from django.db import migrations, models

FK = "batches_batchrow_reward_id_6cd1ad71_fk_orders_reward_id"
UNIQUE = "batches_batchrow_reward_id_key"


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0008_fk_index_covered"),
        ("orders", "0025_due_notes_together"),
    ]

    operations = [
        migrations.RunSQL(
            [
                f"ALTER TABLE batches_batchrow DROP CONSTRAINT IF EXISTS {FK};",
                f"ALTER TABLE batches_batchrow DROP CONSTRAINT IF EXISTS {UNIQUE};",
            ],
            [
                f"ALTER TABLE batches_batchrow ADD CONSTRAINT {UNIQUE} UNIQUE (reward_id);",
                f"ALTER TABLE batches_batchrow ADD CONSTRAINT {FK} FOREIGN KEY (reward_id) "
                "REFERENCES orders_reward (id) DEFERRABLE INITIALLY DEFERRED;",
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="batchrow",
                    name="reward",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.PROTECT,
                        related_name="batch_row",
                        to="orders.reward",
                    ),
                ),
            ],
        ),
    ]
