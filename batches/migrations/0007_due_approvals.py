"""Batches waiting for approval are noted for the approval-expiry sweep.

A statement trigger calling public.tenant_due_note_where() (tenants migration 0010, run on the public schema first).
One line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

TABLE = "batches_batch"
ARGS = "'batch_approvals', 'approval_status', 'pending'"


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0006_due_notes"),
        ("tenants", "0010_due_note_by_column"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE TRIGGER tenant_due_approval_{event.lower()} AFTER {event} ON {TABLE} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note_where({ARGS});",
            f"DROP TRIGGER IF EXISTS tenant_due_approval_{event.lower()} ON {TABLE};",
        )
        for event in ("INSERT", "UPDATE")
    ]
