"""Rewards lose the index on `order_id` alone: (order_id, position) and (order_id, status) serve every lookup by
order (and the foreign key's cascade), and each new reward writes one index less (a bulk chunk writes 5,000).

An explicit DROP INDEX (RunSQL, which platform_migrate can replay in other schemas): AlterField finds the index
to drop by introspection, which finds nothing on the empty schema that tenant provisioning collects its SQL from
(tenants.provisioning), so new tenants would have kept it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0020_due_reminders_idempotency"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS orders_reward_order_id_29c7fec6;",
            "CREATE INDEX IF NOT EXISTS orders_reward_order_id_29c7fec6 ON orders_reward (order_id);",
            state_operations=[
                migrations.AlterField(
                    model_name="reward",
                    name="order",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="rewards",
                        to="orders.order",
                    ),
                ),
            ],
        ),
    ]
