"""Unfinished webhook deliveries (pending, sending) are noted for the sweep.

Statement triggers calling public.tenant_due_note() (tenants migration 0009, which runs on the public schema
first): the write's transaction notes "this schema has work of this kind" for the sweeps (tenants.due). One line
per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import due_trigger_sql as due_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_event_subject_index"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("webhooks_webhookdelivery", "'webhooks', 'pending', 'sending'")),
    ]
