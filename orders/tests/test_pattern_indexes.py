"""The columns only ever compared whole carry one index each: a new tenant schema has none of the LIKE-only
(`varchar_pattern_ops`) indexes orders 0022 and funds 0008 drop, and the lookups by value still read an index. A
hold's reference, which no query looks up, has none at all (funds 0011)."""

from __future__ import annotations

from django.db import connection

DROPPED = {
    "orders_reward_reference_1e917479_like",
    "orders_reward_claim_token_hash_0c7e09cd_like",
    "orders_idempotencyrecord_key_64efe83a_like",
    "funds_hold_reference_ade8f227_like",
    "funds_ledgertransaction_reference_eaab08a9_like",
    "funds_hold_reference_ade8f227",
}


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # empty tables: ask which index, not whether
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_new_schema_has_no_pattern_index_and_whole_value_lookups_use_an_index(tenant_a):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [tenant_a.schema_name])
        names = {row[0] for row in cursor.fetchall()}
    assert {"orders_reward_reference_key", "funds_ledgertransaction_reference_eaab08a9"} <= names
    assert names & DROPPED == set()
    connection.set_tenant(tenant_a)
    for sql, index in [
        ("SELECT id FROM orders_reward WHERE reference = %s", "orders_reward_reference_key"),
        ("SELECT id FROM orders_reward WHERE claim_token_hash = %s", "reward_claim_token"),
        ("SELECT id FROM orders_idempotencyrecord WHERE key = %s", "orders_idempotencyrecord_key_key"),
        (
            "SELECT id FROM funds_ledgertransaction WHERE reference = %s",
            "funds_ledgertransaction_reference_eaab08a9",
        ),
    ]:
        assert index in _plan(sql, ["x"]), sql
