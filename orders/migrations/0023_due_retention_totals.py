"""Deliveries are noted for recipient retention (tenants.due, kind `retention`: the schema is visited and works
out when its earliest delivery not yet anonymised falls due), and any row written to the hourly rollup for the
reward totals rebuild (kind `totals`: the all-time totals are recomputed in the schemas whose hours changed).

Statement triggers calling public.tenant_due_note() and public.tenant_due_note_rows() (tenants migrations 0009 and
0015, run on the public schema first). One line per statement: tenant provisioning replays this SQL statement by
statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql, due_trigger_sql

# A reward's delivery writes `delivered_at` (orders.lifecycle, fulfillment.drain): any UPDATE that sets the column
# notes the schema (a trigger with a column list has no transition table, so it notes whatever rows it wrote), and
# so does a reward inserted in a state it reaches only once delivered. The retention run's own UPDATE (the
# recipient's fields) does not set it, so an anonymisation does not note its schema again.
RETENTION = [
    *due_trigger_sql("orders_reward", "'retention', 'delivered', 'opened', 'redeemed', 'expired'",
                     name="tenant_due_retention", events=("INSERT",)),
    change_trigger_sql("orders_reward", "retention", "UPDATE OF delivered_at"),
]  # fmt: skip
TOTALS = due_trigger_sql("orders_rewardstat", "'totals'", name="tenant_due_totals", function="tenant_due_note_rows")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0022_pattern_indexes_unused"),
        ("tenants", "0015_due_retention_totals"),
    ]

    operations = [migrations.RunSQL(create, drop) for create, drop in (*RETENTION, *TOTALS)]
