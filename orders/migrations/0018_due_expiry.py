"""Rewards whose claim link can expire (delivered, delivery_failed, opened) are noted for the expiry sweep.

Statement triggers calling public.tenant_due_note() (tenants migration 0009, run on the public schema first).
One line per statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

ARGS = "'expiry', 'delivered', 'delivery_failed', 'opened'"


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0017_due_approvals"),
        ("tenants", "0011_due_expiry"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE TRIGGER tenant_due_expiry_{event.lower()} AFTER {event} ON orders_reward "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note({ARGS});",
            f"DROP TRIGGER IF EXISTS tenant_due_expiry_{event.lower()} ON orders_reward;",
        )
        for event in ("INSERT", "UPDATE")
    ]
