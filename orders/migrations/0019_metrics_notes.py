"""Rewards are one of the three tables the business gauges read: any write to them notes the schema for the
metrics snapshot (observability.snapshot), which then recomputes only the schemas that changed.

A statement trigger calling public.tenant_due_note('metrics') (tenants migration 0009, run on the public schema
first). One line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql

CREATE, DROP = change_trigger_sql("orders_reward", "metrics")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0018_due_expiry"),
        ("tenants", "0009_due_events"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
