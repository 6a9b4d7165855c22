"""Recipient retention and the reward totals rebuild visit only schemas with work (tenants.due, kinds `retention`
and `totals`): `public.tenant_due_note_rows(kind)` notes the schema when a statement wrote any row (the totals'
triggers on the hourly rollup, orders migration 0023, whose folds often write none), and every existing schema is
noted once for both kinds, so the first run of each after the upgrade visits each (the triggers are orders
migration 0023 and people migration 0003).
"""

from django.db import migrations

NOTE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION public.tenant_due_note_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF current_setting('rp_due.' || TG_ARGV[0], true) = TG_TABLE_SCHEMA THEN RETURN NULL; END IF; "
    "IF NOT EXISTS (SELECT 1 FROM new_rows) THEN RETURN NULL; END IF; "
    "INSERT INTO public.tenants_tenantdueevent (schema_name, kind, due_at) "
    "VALUES (TG_TABLE_SCHEMA, TG_ARGV[0], now()); "
    "PERFORM set_config('rp_due.' || TG_ARGV[0], TG_TABLE_SCHEMA, true); "
    "RETURN NULL; END $$;"
)
SEED = (
    "INSERT INTO tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT t.schema_name, k.kind, now() FROM tenants_tenant t CROSS JOIN unnest(%s::text[]) AS k(kind) "
    "WHERE t.schema_ready;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0014_due_reminders_idempotency"),
    ]

    operations = [
        migrations.RunSQL(NOTE_FUNCTION, "DROP FUNCTION IF EXISTS public.tenant_due_note_rows();"),
        migrations.RunSQL([(SEED, [["retention", "totals"]])], migrations.RunSQL.noop),
    ]
