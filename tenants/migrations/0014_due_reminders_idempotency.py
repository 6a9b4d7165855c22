"""Reminders and the Idempotency-Key purge visit only schemas with work (tenants.due, kinds `reminders` and
`idempotency`): every existing schema is noted once, so the first sweep of each after the upgrade visits each (the
triggers are orders migration 0020 and programs migration 0006)."""

from django.db import migrations

SEED = (
    "INSERT INTO tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT t.schema_name, k.kind, now() FROM tenants_tenant t CROSS JOIN unnest(%s::text[]) AS k(kind) "
    "WHERE t.schema_ready;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0013_tenant_schema_ready"),
    ]

    operations = [migrations.RunSQL([(SEED, [["reminders", "idempotency"]])], migrations.RunSQL.noop)]
