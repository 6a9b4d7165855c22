"""Rollups bucketed by UTC hour instead of UTC day, so reports can read days in the tenant's time zone.

A UTC day cannot be split into another zone's days; an hour can be regrouped into any whole-hour zone's days at
read time (orders.rollups), and a tenant that changes its zone sees its history in the new zone at once. The
rollups are rebuilt here from the rewards and the ledger (the old day rows could not be split), and the
triggers now write `date_trunc('hour', created_at, 'UTC')`.

Every statement is one line: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations, models


def one_line(sql: str) -> str:
    return " ".join(line.strip() for line in sql.strip().splitlines())


SPEND_SELECT = """
    SELECT date_trunc('hour', t.created_at, 'UTC'), t.currency, o.program_id, r.product_id,
    coalesce(left(r.metadata ->> 'department', 100), ''),
    sum(CASE WHEN t.kind = 'capture' THEN t.amount ELSE -t.amount END),
    count(*) FILTER (WHERE t.kind = 'capture'), count(*) FILTER (WHERE t.kind = 'refund')
    FROM {source} t
    LEFT JOIN orders_reward r ON r.id = (CASE WHEN t.reference ~ '^reward:[0-9a-fA-F-]{{36}}$'
    THEN substr(t.reference, 8)::uuid END)
    LEFT JOIN orders_order o ON o.id = r.order_id
    WHERE t.kind IN ('capture', 'refund') GROUP BY 1, 2, 3, 4, 5
"""
SPEND_COLUMNS = "(hour, currency, program_id, product_id, department, amount, captures, refunds)"
REWARD_MOVED = (
    "(o.status, o.created_at, o.currency, o.amount) IS DISTINCT FROM (r.status, r.created_at, r.currency, r.amount)"
)

REBUILD = [
    "DELETE FROM orders_rewardstatdelta;",
    "DELETE FROM orders_rewardstat;",
    "DELETE FROM orders_spendstatdelta;",
    "DELETE FROM orders_spendstat;",
    one_line("""
    INSERT INTO orders_rewardstat (hour, status, currency, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, count(*), sum(amount) FROM orders_reward
    GROUP BY 1, 2, 3;
    """),
    one_line(f"INSERT INTO orders_spendstat {SPEND_COLUMNS} {SPEND_SELECT.format(source='funds_ledgertransaction')};"),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, count(*), sum(amount) FROM new_rows
    GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line(f"""
    CREATE OR REPLACE FUNCTION orders_reward_stat_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, rewards, amount)
    SELECT hour, status, currency, sum(n), sum(a) FROM (
    SELECT date_trunc('hour', o.created_at, 'UTC') AS hour, o.status, o.currency, -1 AS n, -o.amount AS a
    FROM old_rows o JOIN new_rows r ON r.id = o.id WHERE {REWARD_MOVED}
    UNION ALL
    SELECT date_trunc('hour', r.created_at, 'UTC'), r.status, r.currency, 1, r.amount
    FROM old_rows o JOIN new_rows r ON r.id = o.id WHERE {REWARD_MOVED}
    ) AS moves GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line("""
    CREATE OR REPLACE FUNCTION orders_reward_stat_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, -count(*), -sum(amount) FROM old_rows
    GROUP BY 1, 2, 3;
    RETURN NULL; END $$;
    """),
    one_line(f"""
    CREATE OR REPLACE FUNCTION orders_spend_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_spendstatdelta {SPEND_COLUMNS} {SPEND_SELECT.format(source="new_rows")};
    RETURN NULL; END $$;
    """),
]


def _to_hour(model: str) -> list:
    return [
        migrations.RenameField(model_name=model, old_name="day", new_name="hour"),
        migrations.AlterField(model_name=model, name="hour", field=models.DateTimeField()),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_search_rollups"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="rewardstat", name="reward_stat_key"),
        migrations.RemoveConstraint(model_name="spendstat", name="spend_stat_key"),
        *_to_hour("rewardstat"),
        *_to_hour("rewardstatdelta"),
        *_to_hour("spendstat"),
        *_to_hour("spendstatdelta"),
        migrations.AddConstraint(
            model_name="rewardstat",
            constraint=models.UniqueConstraint(fields=("hour", "status", "currency"), name="reward_stat_key"),
        ),
        migrations.AddConstraint(
            model_name="spendstat",
            constraint=models.UniqueConstraint(
                fields=("hour", "currency", "program_id", "product_id", "department"),
                name="spend_stat_key",
                nulls_distinct=False,
            ),
        ),
        migrations.RunSQL(REBUILD, migrations.RunSQL.noop),
    ]
