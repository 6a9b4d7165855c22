"""Claim links that may get reminders (delivered, opened) are noted for the reminders sweep, and new
Idempotency-Key records for the purge (tenants.due, kinds `reminders` and `idempotency`).

Statement triggers calling public.tenant_due_note() (tenants migration 0009, run on the public schema first). One
line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql, due_trigger_sql

REMINDERS = due_trigger_sql("orders_reward", "'reminders', 'delivered', 'opened'", name="tenant_due_reminders")
IDEMPOTENCY = change_trigger_sql("orders_idempotencyrecord", "idempotency", "INSERT")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0019_metrics_notes"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in REMINDERS),
        migrations.RunSQL(*IDEMPOTENCY),
    ]
