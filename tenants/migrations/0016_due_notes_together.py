"""`public.tenant_due_notes(kind, statuses, kind, statuses, …)`: one statement trigger notes several kinds of due work
for its table (tenants.due), as one tenant_due_note() trigger per kind did. `statuses` is a space-separated list
(the kind is noted when a written row has one of them) or '' (noted after any statement). The written rows'
statuses are read once, only if a kind that needs them is not yet noted in the transaction, and the kinds noted
are inserted by one statement (orders 0025 uses it for rewards: two triggers per statement instead of five).
The function lives in the public schema, once; one statement per line, as 0009."""

from django.db import migrations

NOTES_FUNCTION = (
    "CREATE OR REPLACE FUNCTION public.tenant_due_notes() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE kinds text[] := '{}'; present text[]; BEGIN "
    "FOR i IN 0 .. TG_NARGS / 2 - 1 LOOP "
    "CONTINUE WHEN current_setting('rp_due.' || TG_ARGV[2 * i], true) = TG_TABLE_SCHEMA; "
    "IF TG_ARGV[2 * i + 1] <> '' THEN "
    "IF present IS NULL THEN "
    "SELECT coalesce(array_agg(status::text), '{}') INTO present FROM (SELECT DISTINCT status FROM new_rows) AS s; "
    "END IF; "
    "CONTINUE WHEN NOT present && string_to_array(TG_ARGV[2 * i + 1], ' '); "
    "END IF; "
    "kinds := kinds || TG_ARGV[2 * i]; "
    "END LOOP; "
    "IF cardinality(kinds) = 0 THEN RETURN NULL; END IF; "
    "INSERT INTO public.tenants_tenantdueevent (schema_name, kind, due_at) "
    "SELECT TG_TABLE_SCHEMA, k, now() FROM unnest(kinds) AS k; "
    "FOR i IN 1 .. cardinality(kinds) LOOP PERFORM set_config('rp_due.' || kinds[i], TG_TABLE_SCHEMA, true); END LOOP; "
    "RETURN NULL; END $$;"
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0015_due_retention_totals"),
    ]

    operations = [
        migrations.RunSQL(NOTES_FUNCTION, "DROP FUNCTION IF EXISTS public.tenant_due_notes();"),
    ]
