"""Engagement that outlives the status: when a reward was first opened and first clicked, and the reward rollup
keyed by it too, so the funnel is monotonic (sent >= delivered >= opened >= clicked) and an opened reward that
later expires still counts as opened.

- `opened_at` / `clicked_at` on rewards, backfilled from each reward's timeline (its first `opened` or `redeemed`
  event; its first "email link followed" event), else `updated_at` for a reward already opened or redeemed.
- `engaged` (0 none, 1 opened, 2 clicked) in the reward rollup and its deltas; the triggers write it and count a
  change of engagement as a move, like a change of status. The rollup is rebuilt from the rewards.

Every statement is one line: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations, models


def one_line(sql: str) -> str:
    return " ".join(line.strip() for line in sql.strip().splitlines())


def engaged(row: str) -> str:
    return f"(CASE WHEN {row}clicked_at IS NOT NULL THEN 2 WHEN {row}opened_at IS NOT NULL THEN 1 ELSE 0 END)"


REWARD_MOVED = (
    f"(o.status, o.created_at, o.currency, o.amount, {engaged('o.')}) IS DISTINCT FROM "
    f"(r.status, r.created_at, r.currency, r.amount, {engaged('r.')})"
)

SQL = [
    one_line("""
    UPDATE orders_reward r SET opened_at = e.first_at FROM (SELECT reward_id, min(created_at) AS first_at
    FROM orders_rewardevent WHERE to_status IN ('opened', 'redeemed') GROUP BY reward_id) e
    WHERE e.reward_id = r.id AND r.opened_at IS NULL;
    """),
    "UPDATE orders_reward SET opened_at = updated_at WHERE opened_at IS NULL AND status IN ('opened', 'redeemed');",
    one_line("""
    UPDATE orders_reward r SET clicked_at = e.first_at FROM (SELECT reward_id, min(created_at) AS first_at
    FROM orders_rewardevent WHERE note = 'email link followed' GROUP BY reward_id) e
    WHERE e.reward_id = r.id AND r.clicked_at IS NULL;
    """),
    "DELETE FROM orders_rewardstatdelta;",
    "DELETE FROM orders_rewardstat;",
    one_line(f"""
    INSERT INTO orders_rewardstat (hour, status, currency, engaged, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, {engaged('')}, count(*), sum(amount)
    FROM orders_reward GROUP BY 1, 2, 3, 4;
    """),
    one_line(f"""
    CREATE OR REPLACE FUNCTION orders_reward_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, engaged, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, {engaged('')}, count(*), sum(amount)
    FROM new_rows GROUP BY 1, 2, 3, 4;
    RETURN NULL; END $$;
    """),
    one_line(f"""
    CREATE OR REPLACE FUNCTION orders_reward_stat_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, engaged, rewards, amount)
    SELECT hour, status, currency, engaged, sum(n), sum(a) FROM (
    SELECT date_trunc('hour', o.created_at, 'UTC') AS hour, o.status, o.currency, {engaged('o.')} AS engaged,
    -1 AS n, -o.amount AS a
    FROM old_rows o JOIN new_rows r ON r.id = o.id WHERE {REWARD_MOVED}
    UNION ALL
    SELECT date_trunc('hour', r.created_at, 'UTC'), r.status, r.currency, {engaged('r.')}, 1, r.amount
    FROM old_rows o JOIN new_rows r ON r.id = o.id WHERE {REWARD_MOVED}
    ) AS moves GROUP BY 1, 2, 3, 4;
    RETURN NULL; END $$;
    """),
    one_line(f"""
    CREATE OR REPLACE FUNCTION orders_reward_stat_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO orders_rewardstatdelta (hour, status, currency, engaged, rewards, amount)
    SELECT date_trunc('hour', created_at, 'UTC'), status, currency, {engaged('')}, -count(*), -sum(amount)
    FROM old_rows GROUP BY 1, 2, 3, 4;
    RETURN NULL; END $$;
    """),
]

ENGAGED = models.SmallIntegerField(choices=[(0, "None"), (1, "Opened"), (2, "Clicked")], default=0)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_rollups_by_hour"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="rewardstat", name="reward_stat_key"),
        migrations.AddField(model_name="reward", name="clicked_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="reward", name="opened_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="rewardstat", name="engaged", field=ENGAGED),
        migrations.AddField(model_name="rewardstatdelta", name="engaged", field=ENGAGED),
        migrations.AddConstraint(
            model_name="rewardstat",
            constraint=models.UniqueConstraint(
                fields=("hour", "status", "currency", "engaged"), name="reward_stat_key"
            ),
        ),
        migrations.RunSQL(SQL, migrations.RunSQL.noop),
    ]
