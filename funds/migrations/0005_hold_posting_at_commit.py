"""A hold's posting applied by PostgreSQL during COMMIT (funds.models.HoldPostingAtCommit): a deferred constraint
trigger on the pending-posting row runs the same conditional UPDATEs and entries as funds.services._post (cash
first, then holds: ACCOUNT_LOCK_ORDER), then deletes the row. Refusals fail the COMMIT with their own SQLSTATE:
RPF01 available funds do not cover the hold, RPF02 the hold would take available funds below the low-balance
threshold (the caller then posts in the transaction, which records balance.low). The trigger works in the schema
of the row that fired it, whatever the session's search_path is at COMMIT (the rest of the transaction is over by
then). One statement per line: tenant provisioning replays this SQL line by line."""

from django.db import migrations, models

SQL = [
    "CREATE OR REPLACE FUNCTION funds_hold_posting_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE cash_id bigint; holds_id bigint; available numeric; threshold numeric; BEGIN "
    "PERFORM set_config('search_path', quote_ident(TG_TABLE_SCHEMA) || ', public', true); "
    "UPDATE funds_ledgeraccount SET balance = balance - NEW.amount, updated_at = now() "
    "WHERE currency = NEW.currency AND kind = 'cash' AND balance - NEW.amount >= 0 "
    "RETURNING id, balance, low_balance_threshold INTO cash_id, available, threshold; "
    "IF cash_id IS NULL THEN "
    "RAISE EXCEPTION 'available % funds do not cover %', NEW.currency, NEW.amount USING ERRCODE = 'RPF01'; END IF; "
    "IF threshold IS NOT NULL AND available < threshold AND available + NEW.amount >= threshold THEN "
    "RAISE EXCEPTION 'available % funds would fall below the low-balance threshold', NEW.currency "
    "USING ERRCODE = 'RPF02'; END IF; "
    "UPDATE funds_ledgeraccount SET balance = balance + NEW.amount, updated_at = now() "
    "WHERE currency = NEW.currency AND kind = 'holds' RETURNING id INTO holds_id; "
    "IF holds_id IS NULL THEN "
    "RAISE EXCEPTION 'no holds account for %', NEW.currency USING ERRCODE = 'RPF01'; END IF; "
    "INSERT INTO funds_ledgerentry (transaction_id, account_id, amount) "
    "VALUES (NEW.transaction_id, cash_id, -NEW.amount), (NEW.transaction_id, holds_id, NEW.amount); "
    "DELETE FROM funds_holdpostingatcommit WHERE transaction_id = NEW.transaction_id; "
    "RETURN NULL; END $$;",
    "CREATE CONSTRAINT TRIGGER funds_hold_posting_at_commit AFTER INSERT ON funds_holdpostingatcommit "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION funds_hold_posting_at_commit();",
]


class Migration(migrations.Migration):
    dependencies = [
        ("funds", "0004_ledger_day_stat"),
    ]

    operations = [
        migrations.CreateModel(
            name="HoldPostingAtCommit",
            fields=[
                ("transaction_id", models.UUIDField(primary_key=True, serialize=False)),
                ("currency", models.CharField(max_length=3)),
                ("amount", models.DecimalField(decimal_places=4, max_digits=20)),
            ],
        ),
        migrations.RunSQL(SQL, migrations.RunSQL.noop),
    ]
