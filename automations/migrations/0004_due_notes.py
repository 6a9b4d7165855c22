"""Automations and their waiting runs (pending, failed: retried the same day) are noted for the minute's schedule.

Statement triggers calling public.tenant_due_note() (tenants migration 0009, which runs on the public schema
first): the write's transaction notes "this schema has work of this kind" for the sweeps (tenants.due). One line
per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import due_trigger_sql as due_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0003_points_reward"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("automations_automation", "'automations'")),
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("automations_automationrun", "'automations', 'pending', 'failed'")),
    ]
