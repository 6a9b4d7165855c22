"""Confirmed and processing batches are noted for the stale-batch sweep.

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
        ("batches", "0005_error_file_cells"),
        ("tenants", "0009_due_events"),
    ]

    operations = [
        *(migrations.RunSQL(create, drop) for create, drop in due_triggers("batches_batch", "'batches', 'confirmed', 'processing'")),
    ]
