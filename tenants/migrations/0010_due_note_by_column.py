"""Due notes for work recognised by a column other than `status` (tenants.due): `public.tenant_due_note_where(kind,
column, value…)` notes the schema when a written row has one of the values in that column; the orders' and batches'
approval windows use it. Every existing schema is noted once for the new kinds, so the first sweeps visit each.
"""

from django.db import migrations

KINDS = ["order_approvals", "batch_approvals"]

NOTE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION public.tenant_due_note_where() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE found boolean; BEGIN "
    "IF current_setting('rp_due.' || TG_ARGV[0], true) = TG_TABLE_SCHEMA THEN RETURN NULL; END IF; "
    "EXECUTE format('SELECT EXISTS (SELECT 1 FROM new_rows WHERE %I::text = ANY ($1))', TG_ARGV[1]) "
    "INTO found USING TG_ARGV[2:TG_NARGS - 1]; "
    "IF NOT found THEN RETURN NULL; END IF; "
    "INSERT INTO public.tenants_tenantdueevent (schema_name, kind, due_at) VALUES (TG_TABLE_SCHEMA, TG_ARGV[0], now()); "
    "PERFORM set_config('rp_due.' || TG_ARGV[0], TG_TABLE_SCHEMA, true); "
    "RETURN NULL; END $$;"
)
SEED = (
    "INSERT INTO tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT t.schema_name, k.kind, now() FROM tenants_tenant t CROSS JOIN unnest(%s::text[]) AS k(kind);"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0009_due_events"),
    ]

    operations = [
        migrations.RunSQL(NOTE_FUNCTION, "DROP FUNCTION IF EXISTS public.tenant_due_note_where();"),
        migrations.RunSQL([(SEED, [KINDS])], migrations.RunSQL.noop),
    ]
