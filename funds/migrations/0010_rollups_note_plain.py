"""The ledger day rollup's deltas note the rollups sweep with a plain statement trigger: the note needs none of the
written rows, so 0006's transition table was collected for nothing on every posting (every order's hold posting,
at its COMMIT). As orders 0025 does for the reward and spend deltas. One line per statement."""

from django.db import migrations

from tenants.due_sql import change_trigger_sql

TABLE = "funds_ledgerdaystatdelta"
CREATE, DROP = change_trigger_sql(TABLE, "rollups", "INSERT OR UPDATE")
OLD = [
    f"CREATE TRIGGER tenant_due_{event.lower()} AFTER {event} ON {TABLE} REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note('rollups');"
    for event in ("INSERT", "UPDATE")
]


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0009_ledger_entry_account_index_once"),
        ("tenants", "0016_due_notes_together"),
    ]

    operations = [
        migrations.RunSQL(
            [
                f"DROP TRIGGER IF EXISTS tenant_due_insert ON {TABLE};",
                f"DROP TRIGGER IF EXISTS tenant_due_update ON {TABLE};",
                CREATE,
            ],
            [DROP, *OLD],
        ),
    ]
