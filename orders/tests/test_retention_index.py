"""Recipient retention reads an index, not every reward (orders 0027): each hourly visit of a schema with
deliveries asks for its earliest delivery not yet anonymised and for the due ones; at 1,000,000 rewards they took
214 and 382 ms (a sequential scan, a walk of the created_at index), 0.01 ms each with the index. The index holds
only delivered rewards whose recipient is kept, so a new (undelivered) reward writes no entry."""

from __future__ import annotations

from django.db import connection

from orders import erasure
from people.erasure import ERASED


def test_a_new_schema_indexes_only_delivered_rewards_whose_recipient_is_kept(tenant_a):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'reward_delivered_kept'",
            [tenant_a.schema_name],
        )
        (definition,) = cursor.fetchone()
    assert "(delivered_at)" in definition
    assert f"WHERE ((delivered_at IS NOT NULL) AND (NOT ((recipient_name)::text = '{ERASED}'::text)))" in definition


def test_both_retention_queries_as_sent_read_the_index(api_a, tenant_a):
    """The plans of the statements the retention code runs (its own SQL and parameters, explained just before
    they run). Empty tables, so sequential scans, bitmap scans and sorts are off: the question is whether the index
    serves them in its own order. At 1,000,000 rewards the batch ordered by creation (the model's ordering) walked
    the created_at index past every reward even with this index there (389 ms with nothing due): the planner,
    taking delivery time and anonymisation for independent, expected a quarter of the rewards to be due."""
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 30}).status_code == 200
    plans: list[str] = []

    def explain_first(execute, sql, params, many, context):
        if sql.lstrip().startswith("SELECT") and "orders_reward" in sql and "delivered_at" in sql:
            raw = context["cursor"].cursor  # the driver's cursor: not through this wrapper again
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                raw.execute(f"SET LOCAL {setting} = off")
            raw.execute("EXPLAIN " + sql, params)
            plans.append("\n".join(row[0] for row in raw.fetchall()))
        return execute(sql, params, many, context)

    connection.set_tenant(tenant_a)
    with connection.execute_wrapper(explain_first):
        assert erasure.rewards_next_anonymisation() is None
        assert erasure.rewards_anonymise_delivered() == 0
    assert len(plans) == 2, plans
    first, due = plans
    # The earliest delivery is the index's first entry; the due batch is read in the index's order (no sort).
    assert "reward_delivered_kept" in first and "Limit" in first, first
    assert "reward_delivered_kept" in due and "Sort" not in due, due
