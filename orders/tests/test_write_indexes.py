"""The indexes every new reward, ledger entry, event and batch row writes are the ones a query reads (orders 0024,
funds 0009, webhooks 0005, batches 0009): a new tenant schema has the partial claim-token and person indexes and
none of the dropped ones, and the lookups by those values, the person foreign key's SET NULL and the
scheduled-delivery sweep still read an index."""

from __future__ import annotations

import uuid

from django.db import connection

from orders.claim_tokens import claim_token_hash
from orders.models import Reward

DROPPED = {
    "orders_reward_claim_token_hash_0c7e09cd",
    "orders_reward_person_id_07c4c87c",
    "orders_reward_deliver_at_a26f4b6c",
    "funds_ledgerentry_account_id_f2daa14e",
    "webhooks_event_id_136b0861_like",
}


def _indexes(schema: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [schema])
        return dict(cursor.fetchall())


def _plan(sql: str, params: list | None = None) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # empty tables: ask which index, not whether
        cursor.execute("EXPLAIN " + sql, params or [])
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_new_schema_indexes_claim_tokens_and_persons_only_where_set(tenant_a):
    indexes = _indexes(tenant_a.schema_name)
    assert set(indexes) & DROPPED == set()
    assert "WHERE (NOT ((claim_token_hash)::text = ''::text))" in indexes["reward_claim_token"]
    assert "WHERE (person_id IS NOT NULL)" in indexes["reward_person"]
    assert {"reward_status_deliver_at", "funds_ledge_account_4ac32f_idx", "webhooks_event_pkey"} <= set(indexes)


def test_lookups_by_claim_token_person_and_due_time_read_an_index(tenant_a):
    connection.set_tenant(tenant_a)
    # Unordered: with the model's ordering and the few rows earlier tests leave, the planner may as well walk the
    # created_at index and filter; the question is whether a lookup by the value can use its index.
    by_token = Reward.objects.filter(claim_token_hash=claim_token_hash("a-claim-token")).order_by().only("id")
    assert "reward_claim_token" in _plan(*by_token.query.sql_with_params())
    by_person = Reward.objects.filter(person_id=uuid.uuid4()).order_by().only("id")
    assert "reward_person" in _plan(*by_person.query.sql_with_params())
    due = Reward.objects.filter(status="scheduled", deliver_at__lte="2030-01-01T00:00:00Z").order_by().only("id")
    assert "reward_status_deliver_at" in _plan(*due.query.sql_with_params())
    entries = "SELECT id FROM funds_ledgerentry WHERE account_id = %s"
    assert "funds_ledge_account_4ac32f_idx" in _plan(entries, [1])


def test_the_person_foreign_keys_set_null_reads_the_partial_index_in_its_generic_plan(tenant_a):
    """PostgreSQL runs a foreign key's ON DELETE SET NULL as a prepared statement; its generic plan has only a
    parameter for the person, and `person_id = $1` still implies `person_id IS NOT NULL`."""
    connection.set_tenant(tenant_a)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            "PREPARE reward_person_gone (uuid) AS UPDATE ONLY orders_reward SET person_id = NULL WHERE $1 = person_id"
        )
        try:
            plan = _plan(f"EXECUTE reward_person_gone ('{uuid.uuid4()}')")  # a literal: no parameter in a utility
        finally:
            cursor.execute("DEALLOCATE reward_person_gone")
    assert "reward_person" in plan


def test_a_batch_row_links_its_reward_without_a_constraint_or_an_index(tenant_a):
    """batches 0009: the link is set once by the chunk that creates the reward; nothing checks or indexes it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass",
            [f'"{tenant_a.schema_name}".batches_batchrow'],
        )
        constraints = {row[0] for row in cursor.fetchall()}
    assert not {c for c in constraints if "reward" in c}, constraints
    indexes = _indexes(tenant_a.schema_name).values()
    assert not [ddl for ddl in indexes if "batches_batchrow " in ddl and "(reward_id)" in ddl]


def test_the_next_due_time_reads_each_minimum_from_an_index(api_a, funded_a, shop, tenant_a):
    """The sweep asks each schema when its next open reward is due (fulfillment.services.rewards_next_due). The
    earliest scheduled delivery and the oldest pending reward are each the first entry of an index (a Limit over
    an index scan), not an aggregate over every open reward (461 ms with 200,000 pending rewards)."""
    from fulfillment.services import REWARDS_NEXT_DUE_SQL
    from testsupport.orders import digital_order

    created = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"))
    assert created.status_code == 201, created.content
    connection.set_tenant(tenant_a)
    # A schema with a backlog, as the sweep meets one: 3,000 open rewards cloned from that one (rolled back with the
    # test) and statistics that count them. With the statistics other tests leave on this shared schema (a table
    # nearly empty) every plan costs the same, and the planner was seen picking any index and sorting.
    overrides = {
        "status": "CASE WHEN g %% 3 = 0 THEN 'scheduled' ELSE 'pending' END",
        "deliver_at": "CASE WHEN g %% 3 = 0 THEN now() + g * interval '1 minute' END",
        "created_at": "now() - g * interval '1 second'",
        "position": "g",
        "claim_token_hash": "''",
        "hold_id": "NULL",
    }
    columns = [f.column for f in Reward._meta.concrete_fields if f.column not in ("id", "reference")]
    values = ", ".join(overrides.get(column, f'r."{column}"') for column in columns)
    names = ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO orders_reward (id, {names}) "
            f"SELECT gen_random_uuid(), {values} FROM orders_reward r, generate_series(1, 3000) g WHERE r.id = %s",
            [created.json()["rewards"][0]["id"]],
        )
        cursor.execute("ANALYZE orders_reward")  # counts this transaction's own rows
    plan = _plan(REWARDS_NEXT_DUE_SQL, [300])
    assert plan.count("Limit") >= 2, plan
    assert "reward_pending_created" in plan and "reward_status_deliver_at" in plan, plan
