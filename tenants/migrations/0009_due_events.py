"""Sweeps visit only the tenant schemas with work (tenants.due): the events table, the trigger function that the
tenant tables' statement triggers call, and one event of each kind for every existing schema so that the first
sweeps after the upgrade visit each schema once (work written before the triggers existed has no event).

The function lives in the public schema, once; every statement is one line (tenant provisioning replays tenant
migrations' SQL statement by statement; this one runs on the public schema only).
"""

from django.db import migrations, models

KINDS = ["fulfilment", "webhooks", "batches", "rollups", "automations"]

# A trigger's arguments: the kind, then the statuses of the new rows that make work (none: any new row does).
# One event per kind per schema per transaction (a transaction-local setting remembers it), due at once: the
# sweep works out from the schema's rows when its work really falls due.
NOTE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION public.tenant_due_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF current_setting('rp_due.' || TG_ARGV[0], true) = TG_TABLE_SCHEMA THEN RETURN NULL; END IF; "
    # Nested: the inner query is planned only for triggers that name statuses (their tables have a status column).
    "IF TG_NARGS > 1 THEN IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status = ANY (TG_ARGV[1:TG_NARGS - 1])) "
    "THEN RETURN NULL; END IF; END IF; "
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
        ('tenants', '0008_deposit_instructions'),
    ]

    operations = [
        migrations.CreateModel(
            name='TenantDueEvent',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('schema_name', models.CharField(max_length=63)),
                ('kind', models.CharField(max_length=20)),
                ('due_at', models.DateTimeField()),
            ],
            options={
                'indexes': [models.Index(fields=['kind', 'due_at'], name='tenant_due_kind_at')],
            },
        ),
        migrations.RunSQL(NOTE_FUNCTION, "DROP FUNCTION IF EXISTS public.tenant_due_note();"),
        migrations.RunSQL([(SEED, [KINDS])], migrations.RunSQL.noop),
    ]
