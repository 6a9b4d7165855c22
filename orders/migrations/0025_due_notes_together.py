"""Fewer trigger calls per reward and per order, same notes and rollups:

- Rewards: one statement trigger per INSERT and per UPDATE notes fulfilment, expiry, reminders and metrics (and
  retention, for an INSERT) together (public.tenant_due_notes(), tenants 0016): one call, one read of the written
  rows' statuses, one INSERT for the kinds noted, instead of five triggers (0014, 0018, 0019, 0020, 0023) each
  scanning the rows and inserting its own note. A DELETE still notes metrics (its own trigger, as 0019 made it).
- Orders: the approval note is a row trigger WHEN the row waits for approval (0017's statement trigger read the
  written rows through dynamic SQL for every order, nearly all of which never wait).
- The rollup deltas' rollups note (0014) needs no written rows: a plain statement trigger (no transition table).
- The spend rollup's trigger returns at once when the transactions written include no capture or refund (a hold,
  a release, a deposit: every order's hold went through its joins for nothing).

bench/pg_writes.py, alternating orders between two schemas: -3.5 % of PostgreSQL's CPU per order. One line per
statement: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations

from tenants.due_sql import change_trigger_sql, due_notes_trigger_sql

REWARD_KINDS = {
    "fulfilment": ("pending", "scheduled", "processing"),
    "expiry": ("delivered", "delivery_failed", "opened"),
    "reminders": ("delivered", "opened"),
    "metrics": (),
}
# An inserted reward in a delivered state notes retention too (0023); an UPDATE notes it through 0023's own trigger
# on `UPDATE OF delivered_at`, which stays.
KINDS_BY_EVENT = {
    "INSERT": {**REWARD_KINDS, "retention": ("delivered", "opened", "redeemed", "expired")},
    "UPDATE": REWARD_KINDS,
}
# The triggers this replaces, as 0014, 0018, 0020, 0023 and 0019 made them (the backward SQL recreates them).
OLD_REWARD_TRIGGERS = [
    ("tenant_due", "'fulfilment', 'pending', 'scheduled', 'processing'", ("INSERT", "UPDATE")),
    ("tenant_due_expiry", "'expiry', 'delivered', 'delivery_failed', 'opened'", ("INSERT", "UPDATE")),
    ("tenant_due_reminders", "'reminders', 'delivered', 'opened'", ("INSERT", "UPDATE")),
    ("tenant_due_retention", "'retention', 'delivered', 'opened', 'redeemed', 'expired'", ("INSERT",)),
]
OLD_METRICS = change_trigger_sql("orders_reward", "metrics")
NEW_METRICS = change_trigger_sql("orders_reward", "metrics", "DELETE")

REWARDS_FORWARD = [
    *(
        f"DROP TRIGGER IF EXISTS {name}_{event.lower()} ON orders_reward;"
        for name, _, events in OLD_REWARD_TRIGGERS
        for event in events
    ),
    OLD_METRICS[1],
    *(due_notes_trigger_sql("orders_reward", kinds, event)[0] for event, kinds in KINDS_BY_EVENT.items()),
    NEW_METRICS[0],
]
REWARDS_BACKWARD = [
    *(due_notes_trigger_sql("orders_reward", kinds, event)[1] for event, kinds in KINDS_BY_EVENT.items()),
    NEW_METRICS[1],
    *(
        f"CREATE TRIGGER {name}_{event.lower()} AFTER {event} ON orders_reward REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note({args});"
        for name, args, events in OLD_REWARD_TRIGGERS
        for event in events
    ),
    OLD_METRICS[0],
]

APPROVALS_FORWARD = [
    sql
    for event in ("INSERT", "UPDATE")
    for sql in (
        f"DROP TRIGGER IF EXISTS tenant_due_approval_{event.lower()} ON orders_order;",
        f"CREATE TRIGGER tenant_due_approval_{event.lower()} AFTER {event} ON orders_order FOR EACH ROW "
        "WHEN (NEW.approval_status = 'pending') EXECUTE FUNCTION public.tenant_due_note('order_approvals');",
    )
]
APPROVALS_BACKWARD = [
    sql
    for event in ("INSERT", "UPDATE")
    for sql in (
        f"DROP TRIGGER IF EXISTS tenant_due_approval_{event.lower()} ON orders_order;",
        f"CREATE TRIGGER tenant_due_approval_{event.lower()} AFTER {event} ON orders_order "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION public.tenant_due_note_where('order_approvals', 'approval_status', 'pending');",
    )
]

DELTAS = ["orders_rewardstatdelta", "orders_spendstatdelta"]
ROLLUPS_FORWARD = [
    sql
    for table in DELTAS
    for sql in (
        f"DROP TRIGGER IF EXISTS tenant_due_insert ON {table};",
        f"DROP TRIGGER IF EXISTS tenant_due_update ON {table};",
        change_trigger_sql(table, "rollups", "INSERT OR UPDATE")[0],
    )
]
ROLLUPS_BACKWARD = [
    sql
    for table in DELTAS
    for sql in (
        change_trigger_sql(table, "rollups", "INSERT OR UPDATE")[1],
        *(
            f"CREATE TRIGGER tenant_due_{event.lower()} AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note('rollups');"
            for event in ("INSERT", "UPDATE")
        ),
    )
]

SPEND_COLUMNS = "(hour, currency, program_id, product_id, department, amount, captures, refunds)"
SPEND_SELECT = (
    "SELECT date_trunc('hour', t.created_at, 'UTC'), t.currency, o.program_id, r.product_id, "
    "coalesce(left(r.metadata ->> 'department', 100), ''), "
    "sum(CASE WHEN t.kind = 'capture' THEN t.amount ELSE -t.amount END), "
    "count(*) FILTER (WHERE t.kind = 'capture'), count(*) FILTER (WHERE t.kind = 'refund') "
    "FROM new_rows t "
    "LEFT JOIN orders_reward r ON r.id = (CASE WHEN t.reference ~ '^reward:[0-9a-fA-F-]{36}$' "
    "THEN substr(t.reference, 8)::uuid END) "
    "LEFT JOIN orders_order o ON o.id = r.order_id "
    "WHERE t.kind IN ('capture', 'refund') GROUP BY 1, 2, 3, 4, 5"
)


def spend_function(early_exit: bool) -> str:
    first = "IF NOT EXISTS (SELECT 1 FROM new_rows WHERE kind IN ('capture', 'refund')) THEN RETURN NULL; END IF; "
    return (
        "CREATE OR REPLACE FUNCTION orders_spend_stat_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"{first if early_exit else ''}INSERT INTO orders_spendstatdelta {SPEND_COLUMNS} {SPEND_SELECT}; "
        "RETURN NULL; END $$;"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0024_partial_indexes"),
        ("tenants", "0016_due_notes_together"),
    ]

    operations = [
        migrations.RunSQL(REWARDS_FORWARD, REWARDS_BACKWARD),
        migrations.RunSQL(APPROVALS_FORWARD, APPROVALS_BACKWARD),
        migrations.RunSQL(ROLLUPS_FORWARD, ROLLUPS_BACKWARD),
        migrations.RunSQL(spend_function(True), spend_function(False)),
    ]
