"""Rewards that wait for fulfilment (pending, scheduled, processing) and the rollups' pending deltas are noted for
the sweeps.

Statement triggers calling public.tenant_due_note() (tenants migration 0009, which runs on the public schema
first): the write's transaction notes "this schema has work of this kind" for the sweeps (tenants.due). One line
per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import due_trigger_sql as due_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0013_discount_report"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("orders_reward", "'fulfilment', 'pending', 'scheduled', 'processing'")),
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("orders_rewardstatdelta", "'rollups'")),
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("orders_spendstatdelta", "'rollups'")),
    ]
