"""Unfinished webhook deliveries (pending, sending) are noted for the sweep.

Statement triggers calling public.tenant_due_note() (tenants migration 0009, which runs on the public schema
first): the write's transaction notes "this schema has work of this kind" for the sweeps (tenants.due). One line
per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations


def due_triggers(table: str, args: str) -> list[tuple[str, str]]:
    return [
        (
            f"CREATE TRIGGER tenant_due_{event.lower()} AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note({args});",
            f"DROP TRIGGER IF EXISTS tenant_due_{event.lower()} ON {table};",
        )
        for event in ("INSERT", "UPDATE")
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0002_event_subject_index"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("webhooks_webhookdelivery", "'webhooks', 'pending', 'sending'")),
    ]
