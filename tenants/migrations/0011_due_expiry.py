"""Claim-link expiry visits only schemas with delivered rewards (tenants.due, kind `expiry`): every existing schema
is noted once, so the first sweep after the upgrade visits each (the triggers are orders migration 0018)."""

from django.db import migrations

SEED = (
    "INSERT INTO tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT schema_name, 'expiry', now() FROM tenants_tenant;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0010_due_note_by_column"),
    ]

    operations = [migrations.RunSQL(SEED, migrations.RunSQL.noop)]
