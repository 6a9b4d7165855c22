"""Recipient retention's first run on a big tenant: what the first `rewards_anonymise_delivered()` pass costs once
a tenant that has delivered many rewards turns a retention period on, and every one of them is due at once.

Not part of `make bench` (it grows its own tenant: ~2 minutes at the default size on 2 CPUs, setup included).

    .venv/bin/python -m bench.retention [--rewards 50000] [--keep-db]

The tenant, on its own database (`bench_retention`) on the embedded server (or DATABASE_URL's): a webhook endpoint
subscribed to every event, and two base orders made through the API and driven by the real code — a digital order
of 5 rewards (delivered, the first one opened) and a physical order of 1 (shipment submitted, shipped, delivered) —
so their stored events, deliveries and reward timelines are exactly what the platform writes: `order.created`,
`order.completed`, `reward.delivered`, `reward.opened`, `shipment.shipped`, `shipment.delivered`, one delivery
each for the endpoint. They are then cloned set-based (generate_series) up to --rewards rewards, 90% digital, 10%
physical: each clone its own order, rewards, timelines, shipment, events and deliveries, every id and recipient
string (name, email, phone, message, the address's name and street) replaced by the clone's own, delivered 60 days
ago and a minute apart before that. Every 10th clone's deliveries failed after one attempt whose response excerpt
echoes the payload (the recipient in it).

Then one `rewards_anonymise_delivered()` with a 30-day retention period (everything cloned is due; the base orders
are not), timed in-process, every SQL statement counted and timed by an execute wrapper: rewards/s, statements per
1,000-reward round (median and largest; the round's batch read included), the time spent in statements (their
round trips to PostgreSQL included; and by kind, verb and table), the longest round and the longest transaction —
a statement outside `transaction.atomic()` is its own transaction; a block is timed from its start to its commit
or rollback. The result is checked: no cloned recipient left in a reward row, an event, a delivery or an attempt.
Prints a markdown table and writes JSON to var/bench/retention-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import database_url_for, latest_json_write, recreate_database, standalone_database_drop  # noqa: E402
from rewards_portal import embedded  # noqa: E402

DATABASE = "bench_retention"
PER_ORDER = 5  # rewards of the digital base order
PHYSICAL_SHARE = 10  # one reward in this many is a physical one (its own order of 1)
FAILED_EVERY = 10  # every this many clones' deliveries failed after an attempt
CHUNK = 10_000  # clones per statement
DOMAIN = "retention.example.com"  # the clones' emails: what must be left nowhere afterwards


def _setup() -> tuple[Any, Any, Any]:
    from django.conf import settings
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create, tenant_create
    from testsupport.api import ApiClient
    from testsupport.catalog import make_shop
    from webhooks.endpoints import webhook_endpoint_create

    settings.API_RATE_LIMIT_PER_MINUTE = 10_000_000  # the bench's own key: measured, not throttled
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the in-process API client's host
    tenant = tenant_create(slug=f"bench-retention-{uuid.uuid4().hex[:6]}", name="Bench Retention")
    key = api_key_create(tenant=tenant, scopes=["read", "write"])
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
        webhook_endpoint_create(url="http://127.0.0.1:9/hook", events=["*"])
    connection.set_schema_to_public()
    return tenant, ApiClient(key[1], key[0]), shop


def _base_orders(tenant: Any, api: Any, shop: Any) -> tuple[str, str]:
    """The digital and the physical base order, made and delivered by the real code; their ids."""
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from bench.common import base_person_rewards
    from fulfillment.models import Shipment
    from fulfillment.shipments import shipment_transition
    from orders.lifecycle import order_refresh_status, reward_transition
    from orders.models import Reward
    from testsupport.orders import US_ADDRESS, physical_order

    digital = {"type": "digital", "rewards": base_person_rewards(shop.coffee_usd, PER_ORDER, phone=True, message=True)}
    physical = physical_order(shop.hamper_usd, shop.ground_us)
    physical["rewards"][0]["recipient"] = {"name": "Base Parcel 0", "email": "parcel0@example.com"}
    physical["rewards"][0]["shipping_address"] = {**US_ADDRESS, "name": "Base Parcel 0", "line1": "1 Base Street"}
    ids = []
    for body in (digital, physical):
        response = api.post("/api/v1/orders", body)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    with tenant_context(tenant):
        for reward in Reward.objects.filter(order_id__in=ids).order_by("order_id", "position"):
            with transaction.atomic():
                reward_transition(reward=reward, to="processing")
                if reward.delivery_method == "shipment":
                    shipment = Shipment.objects.get(reward_id=reward.pk)
                    for to in ("submitted", "shipped", "delivered"):
                        shipment = shipment_transition(shipment=shipment, to=to, tracking_number="1Z999")
                else:
                    reward_transition(reward=reward, to="delivered", note="emailed")
                    order_refresh_status(order=reward.order)  # the last one: `order.completed`
                    if reward.position == 0:
                        reward_transition(reward=reward, to="opened")
    return ids[0], ids[1]


def _columns(cursor: Any, table: str, leave_out: tuple[str, ...] = ()) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_generated = 'NEVER' AND is_identity = 'NO' ORDER BY ordinal_position",
        [table],
    )
    return [name for (name,) in cursor.fetchall() if name not in leave_out]


def _insert(cursor: Any, table: str, overrides: dict[str, str], source: str, params: list[Any], **kw: Any) -> None:
    """INSERT INTO table SELECT (each column as `<alias>.column` unless overridden) FROM source."""
    columns = _columns(cursor, table, kw.get("leave_out", ()))
    alias = kw.get("alias", "b")
    select = ", ".join(overrides.get(name, f"{alias}.{name}") for name in columns)
    cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {source}", params)


def _grow(tenant: Any, base_order: str, first: int, last: int) -> None:
    """Clones first..last of `base_order`: orders, rewards, timelines, shipments, events, deliveries, attempts."""
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, position, recipient_name, recipient_email, recipient_phone FROM orders_reward "
            "WHERE order_id = %s ORDER BY position",
            [base_order],
        )
        rewards = cursor.fetchall()
        cursor.execute(
            "SELECT s.id::text, s.address->>'line1' FROM fulfillment_shipment s JOIN orders_reward r ON r.id = "
            "s.reward_id WHERE r.order_id = %s ORDER BY r.position",
            [base_order],
        )
        shipments = cursor.fetchall()
        # One row per clone: its order's id, its rewards' and shipments' ids by position (arrays, 1-based).
        cursor.execute(
            "CREATE TEMP TABLE clone ON COMMIT DROP AS SELECT g, gen_random_uuid() AS id, "
            "ARRAY(SELECT gen_random_uuid() FROM generate_series(1, %s::int) WHERE g = g) AS rewards, "
            "ARRAY(SELECT gen_random_uuid() FROM generate_series(1, %s::int) WHERE g = g) AS shipments, "
            "now() - interval '60 days' - make_interval(secs => g * 60) AS at "
            "FROM generate_series(%s::int, %s::int) AS g",
            [len(rewards), len(shipments), first, last],
        )
        # What each clone's copies say instead of the base's: ids, then the recipients' strings.
        swaps: list[tuple[str, str]] = [(base_order, "c.id::text")]
        for rid, position, name, email, phone in rewards:
            swaps.append((rid, f"c.rewards[{position + 1}]::text"))
            swaps.append((name, f"'Person ' || c.g || '-{position}'"))
            swaps.append((email, f"'p' || c.g || '.{position}@{DOMAIN}'"))
            if phone:
                swaps.append((phone, f"'+6019' || lpad(c.g::text, 6, '0') || '{position}'"))
        for n, (sid, line1) in enumerate(shipments):
            swaps.append((sid, f"c.shipments[{n + 1}]::text"))
            swaps.append((line1, "c.g || ' Clone Street'"))

        def swapped(expression: str) -> tuple[str, list[str]]:
            params = []
            for old, new in swaps:
                expression = f"replace({expression}, %s, {new})"
                params.append(old)
            return expression, params

        at = "c.at"
        reward = {
            "id": "c.rewards[b.position + 1]",
            "order_id": "c.id",
            "external_id": "''",
            "hold_id": "NULL",
            "created_at": at,
            "updated_at": at,
            "delivered_at": at,
            "opened_at": f"CASE WHEN b.opened_at IS NULL THEN NULL ELSE {at} END",
            "recipient_name": "'Person ' || c.g || '-' || b.position",
            "recipient_email": f"'p' || c.g || '.' || b.position || '@{DOMAIN}'",
            "recipient_phone": "CASE WHEN b.recipient_phone = '' THEN '' "
            "ELSE '+6019' || lpad(c.g::text, 6, '0') || b.position END",
            "message": "replace(b.message, b.recipient_name, 'Person ' || c.g || '-' || b.position)",
        }
        _insert(cursor, "orders_order", {"id": "c.id", "external_id": "NULL", "created_at": at, "updated_at": at},
                "clone c CROSS JOIN orders_order b WHERE b.id = %s", [base_order])  # fmt: skip
        _insert(cursor, "orders_reward", reward, "clone c CROSS JOIN orders_reward b WHERE b.order_id = %s",
                [base_order], leave_out=("reference",))  # fmt: skip
        _insert(cursor, "orders_rewardevent", {"reward_id": "c.rewards[r.position + 1]", "created_at": at},
                "clone c CROSS JOIN orders_rewardevent b JOIN orders_reward r ON r.id = b.reward_id "
                "WHERE r.order_id = %s", [base_order], leave_out=("id",))  # fmt: skip
        if shipments:
            address, params = swapped("b.address::text")
            _insert(cursor, "fulfillment_shipment", {"id": "c.shipments[1]", "reward_id": "c.rewards[r.position + 1]",
                    "address": f"({address})::jsonb", "created_at": at, "updated_at": at},
                    "clone c CROSS JOIN fulfillment_shipment b JOIN orders_reward r ON r.id = b.reward_id "
                    "WHERE r.order_id = %s", [*params, base_order])  # fmt: skip
        subjects = [base_order, *(rid for rid, *_ in rewards), *(sid for sid, _ in shipments)]
        data, params = swapped("b.data::text")
        cursor.execute(
            f"CREATE TEMP TABLE clone_event ON COMMIT DROP AS SELECT c.g, b.id AS base_id, 'evt_' || "
            f"substr(md5(random()::text), 1, 32) AS id, b.type, ({data})::jsonb AS data, {at} AS created_at "
            "FROM clone c CROSS JOIN webhooks_event b WHERE b.data->>'id' = ANY(%s)",
            [*params, subjects],
        )
        cursor.execute("INSERT INTO webhooks_event (id, type, data, created_at) "
                       "SELECT id, type, data, created_at FROM clone_event")  # fmt: skip
        failed = f"mod(e.g, {FAILED_EVERY}) = 0"
        cursor.execute(
            "CREATE TEMP TABLE clone_delivery ON COMMIT DROP AS SELECT e.g, e.id AS event_id, e.data, e.created_at, "
            "'msg_' || substr(md5(random()::text), 1, 32) AS id, b.id AS base_id "
            "FROM clone_event e JOIN webhooks_webhookdelivery b ON b.event_id = e.base_id"
        )
        _insert(cursor, "webhooks_webhookdelivery", {
            "id": "e.id", "event_id": "e.event_id", "created_at": "e.created_at", "next_attempt_at": "e.created_at",
            "enqueued_at": "NULL", "status": f"CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END",
            "attempt_count": "1", "last_attempt_at": "e.created_at",
            "last_status_code": f"CASE WHEN {failed} THEN 422 ELSE 200 END",
            "last_error": f"CASE WHEN {failed} THEN 'HTTP 422' ELSE '' END",
            "succeeded_at": f"CASE WHEN {failed} THEN NULL ELSE e.created_at END",
        }, "clone_delivery e JOIN webhooks_webhookdelivery b ON b.id = e.base_id", [])  # fmt: skip
        cursor.execute(
            "INSERT INTO webhooks_webhookattempt (delivery_id, number, url, request_headers, response_status, "
            "response_excerpt, duration_ms, error, succeeded, created_at) "
            "SELECT e.id, 1, 'http://127.0.0.1:9/hook', jsonb_build_object('webhook-id', e.id, 'content-type', "
            '\'application/json\'), 422, left(\'{"error": "unknown recipient", "received": \' || e.data::text, '
            "1024), "
            f"180, 'HTTP 422', false, e.created_at FROM clone_delivery e WHERE {failed}"
        )


def _vacuum(tenant: Any) -> None:
    from django.db import connection
    from django_tenants.utils import tenant_context

    tables = ("orders_order", "orders_reward", "orders_rewardevent", "fulfillment_shipment", "webhooks_event",
              "webhooks_webhookdelivery", "webhooks_webhookattempt")  # fmt: skip
    with tenant_context(tenant), connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def _counts(tenant: Any) -> dict[str, int]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    queries = {
        "rewards_due": "SELECT count(*) FROM orders_reward WHERE recipient_email LIKE %s",
        "events": "SELECT count(*) FROM webhooks_event WHERE data::text LIKE %s OR data::text LIKE %s",
        "deliveries": "SELECT count(*) FROM webhooks_webhookdelivery",
        "attempts": "SELECT count(*) FROM webhooks_webhookattempt WHERE response_excerpt LIKE %s",
        "shipments": "SELECT count(*) FROM fulfillment_shipment WHERE address::text LIKE '%%Clone Street%%'",
    }
    with tenant_context(tenant), connection.cursor() as cursor:
        found = {}
        for name, sql in queries.items():
            cursor.execute(sql, [f"%@{DOMAIN}%", "% Clone Street%"][: sql.count("%s")])
            found[name] = cursor.fetchone()[0]
    return found


def _kind(sql: str) -> str:
    """A statement's verb and first table: what the breakdown adds up by."""
    verb = sql.split(None, 1)[0].upper()
    match = re.search(r'(?:FROM|UPDATE|INTO)\s+"?(\w+)"?', sql)
    return f"{verb} {match.group(1)}" if match and verb in ("SELECT", "UPDATE", "INSERT", "DELETE") else verb


class Meter:
    """Every SQL statement of the pass (count and seconds, per round), each round's time, and the transactions."""

    def __init__(self) -> None:
        self.statements = 0
        self.statement_seconds = 0.0
        self.rounds: list[dict[str, float]] = []
        self.transactions: list[float] = []  # seconds each transaction was open
        self._since_round = 0
        self._block_started: float | None = None
        self.by_kind: dict[str, list] = {}  # "UPDATE webhooks_event": [statements, seconds]

    def execute(self, execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seconds = time.perf_counter() - started
            self.statements += 1
            self._since_round += 1
            self.statement_seconds += seconds
            kind = self.by_kind.setdefault(_kind(sql), [0, 0.0])
            kind[0] += 1
            kind[1] += seconds
            if not context["connection"].in_atomic_block:
                self.transactions.append(seconds)  # autocommit: the statement is its own transaction

    def instrument(self, wrapper: Any) -> None:
        """Time every outermost atomic block: Django turns autocommit off at its start, on after it ends."""
        original = wrapper.set_autocommit

        def set_autocommit(autocommit: bool, *args: Any, **kwargs: Any) -> Any:
            if not autocommit:
                self._block_started = time.perf_counter()
            elif self._block_started is not None:
                self.transactions.append(time.perf_counter() - self._block_started)
                self._block_started = None
            return original(autocommit, *args, **kwargs)

        wrapper.set_autocommit = set_autocommit

    def round(self, anonymise: Any) -> Any:
        """`anonymise` (one round: orders.erasure.rewards_anonymise), timed; the statements since the last round
        (its batch read) count towards it."""

        def timed(reward_ids: list, **kwargs: Any) -> int:
            started = time.perf_counter()
            changed = anonymise(reward_ids, **kwargs)
            self.rounds.append({"rewards": len(reward_ids), "seconds": time.perf_counter() - started,
                                "statements": self._since_round})  # fmt: skip
            self._since_round = 0
            return changed

        return timed


def _measure(tenant: Any) -> dict[str, Any]:
    from django.db import connection, connections
    from django_tenants.utils import tenant_context

    from orders import erasure

    meter = Meter()
    original = erasure.rewards_anonymise
    erasure.rewards_anonymise = meter.round(original)
    meter.instrument(connections["default"])
    try:
        with tenant_context(tenant), connection.execute_wrapper(meter.execute):
            started = time.perf_counter()
            changed = erasure.rewards_anonymise_delivered()
            seconds = time.perf_counter() - started
    finally:
        erasure.rewards_anonymise = original
        del connections["default"].set_autocommit
    per_round = [r["statements"] for r in meter.rounds if r["rewards"] == erasure.RETENTION_BATCH] or [
        r["statements"] for r in meter.rounds
    ]
    return {
        "rewards": changed,
        "seconds": round(seconds, 2),
        "rewards_per_s": round(changed / seconds) if seconds else 0,
        "rounds": len(meter.rounds),
        "statements": meter.statements,
        "statements_per_round_median": round(statistics.median(per_round)) if per_round else 0,
        "statements_per_round_max": max(per_round, default=0),
        "in_statements_s": round(meter.statement_seconds, 2),
        "round_median_ms": round(statistics.median(r["seconds"] for r in meter.rounds) * 1000) if meter.rounds else 0,
        "round_max_ms": round(max((r["seconds"] for r in meter.rounds), default=0) * 1000),
        "transactions": len(meter.transactions),
        "longest_transaction_ms": round(max(meter.transactions, default=0) * 1000, 1),
        "by_kind": {
            kind: {"statements": n, "seconds": round(t, 2)}
            for kind, (n, t) in sorted(meter.by_kind.items(), key=lambda item: -item[1][1])
        },
    }


def _table(grown: dict[str, Any], result: dict[str, Any], left: dict[str, int]) -> str:
    lines = [
        f"{grown['rewards']:,} rewards due ({grown['events']:,} stored events, {grown['deliveries']:,} deliveries, "
        f"{grown['attempts']:,} attempts echoing a recipient, {grown['shipments']:,} shipments); grown in "
        f"{grown['seconds']:.0f} s; load average {grown['load']:.1f}",
        "",
        "| rewards | rounds | seconds | rewards/s | statements per 1,000-reward round (median / max) | "
        "in statements | round (median / max) | longest transaction |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result['rewards']:,} | {result['rounds']:,} | {result['seconds']:,} | {result['rewards_per_s']:,} | "
        f"{result['statements_per_round_median']:,} / {result['statements_per_round_max']:,} | "
        f"{result['in_statements_s']:,} s ({result['statements']:,} statements) | "
        f"{result['round_median_ms']:,} / {result['round_max_ms']:,} ms | {result['longest_transaction_ms']:,} ms |",
        "",
        "Time in statements by kind: "
        + ", ".join(f"{kind} {row['seconds']:g} s ({row['statements']:,})" for kind, row in result["by_kind"].items()),
        "",
        "Left afterwards (must all be 0): " + ", ".join(f"{name} {count}" for name, count in left.items()),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewards", type=int, default=50_000, help="delivered rewards due at the first run")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false", LOG_LEVEL="WARNING")
    stores = embedded.environment_or_exit()
    os.environ["DATABASE_URL"] = database_url_for(stores["DATABASE_URL"], DATABASE)
    recreate_database(stores["DATABASE_URL"], DATABASE)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("platform_migrate", verbosity=0)
        tenant, api, shop = _setup()
        assert api.patch("/api/v1/privacy", {"recipient_retention_days": 30}).status_code == 200
        digital, physical = _base_orders(tenant, api, shop)
        started = time.monotonic()
        physical_clones = args.rewards // PHYSICAL_SHARE
        digital_clones = (args.rewards - physical_clones) // PER_ORDER
        for first in range(1, digital_clones + 1, CHUNK):
            _grow(tenant, digital, first, min(first + CHUNK - 1, digital_clones))
        offset = digital_clones  # the physical clones' numbers follow: every recipient string distinct
        for first in range(offset + 1, offset + physical_clones + 1, CHUNK):
            _grow(tenant, physical, first, min(first + CHUNK - 1, offset + physical_clones))
        _vacuum(tenant)
        grown = {**_counts(tenant), "seconds": time.monotonic() - started, "load": os.getloadavg()[0]}
        grown["rewards"] = grown.pop("rewards_due")
        print(f"grown: {json.dumps(grown)}", flush=True)
        result = _measure(tenant)
        left = _counts(tenant)
        left.pop("deliveries")
        print(_table(grown, result, left), flush=True)
        latest_json_write("retention", {"grown": grown, "result": result, "left": left})
    finally:
        standalone_database_drop(stores["DATABASE_URL"], DATABASE, keep=args.keep_db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
