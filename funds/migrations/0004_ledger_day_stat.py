"""How the posted balance (cash + holds) moved per UTC day, currency and transaction kind: a statement-level
trigger on ledger entries appends deltas in the posting's own transaction; funds.statements folds and reads
them (monthly statements, running balances). Backfilled here from the entries that exist. One statement per
line: tenant provisioning replays this SQL line by line."""

from django.db import migrations, models

DELTAS = (
    "SELECT (t.created_at AT TIME ZONE 'UTC')::date, t.currency, t.kind, "
    "coalesce(sum(e.amount) FILTER (WHERE a.kind IN ('cash', 'holds')), 0), count(DISTINCT t.id) "
    "FROM {entries} e JOIN funds_ledgertransaction t ON t.id = e.transaction_id "
    "JOIN funds_ledgeraccount a ON a.id = e.account_id GROUP BY 1, 2, 3"
)
SQL = [
    "INSERT INTO funds_ledgerdaystat (day, currency, kind, amount, transactions) "
    + DELTAS.format(entries="funds_ledgerentry")
    + ";",
    "CREATE OR REPLACE FUNCTION funds_ledger_day_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO funds_ledgerdaystatdelta (day, currency, kind, amount, transactions) "
    + DELTAS.format(entries="new_rows")
    + "; RETURN NULL; END $$;",
    "CREATE TRIGGER funds_ledger_day_stat_insert AFTER INSERT ON funds_ledgerentry REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION funds_ledger_day_stat_insert();",
]


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0003_refund_reference_unique"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerDayStatDelta",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("currency", models.CharField(max_length=3)),
                ("kind", models.CharField(max_length=16)),
                ("amount", models.DecimalField(decimal_places=4, max_digits=24)),
                ("transactions", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="LedgerDayStat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("currency", models.CharField(max_length=3)),
                ("kind", models.CharField(max_length=16)),
                ("amount", models.DecimalField(decimal_places=4, default=0, max_digits=24)),
                ("transactions", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("day", "currency", "kind"), name="ledger_day_stat_key")
                ],
            },
        ),
        migrations.RunSQL(SQL, migrations.RunSQL.noop),
    ]
