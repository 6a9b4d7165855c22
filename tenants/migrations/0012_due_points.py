"""The hourly points expiry visits only schemas with awards (tenants.due, kind `points`): every existing schema
is noted once, so the first sweep after the upgrade visits each (the trigger is points migration 0002)."""

from django.db import migrations

SEED = (
    "INSERT INTO tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT schema_name, 'points', now() FROM tenants_tenant;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0011_due_expiry"),
    ]

    operations = [migrations.RunSQL(SEED, migrations.RunSQL.noop)]
