"""Finding and totalling at volume: one tenant grown from 1,000 to 1,000,000 rewards (200,000 orders of 5).

The issue's method: real orders made through the API, then cloned with `generate_series` (each clone its own
order, recipients numbered so every name and email is distinct), captures cloned for the delivered ones so the
spend rollup has real work, then `VACUUM ANALYZE`. The same requests are timed at 1k and at 1M rewards,
in-process (Django's test client: server time without the network): the portal dashboard, Find (portal) and
`GET /rewards?q=` (trigram), the portal orders search, `GET /rewards?recipient_email=`, the reports, and the
first page of `GET /rewards`. The figure is the ratio: flat means the read does not grow with the table.
Ceiling: 50 ms p95 at 1M for search and the dashboard (issue 17).
"""

from __future__ import annotations

import os
import time
import uuid

from .common import Context, Row, percentile

SAMPLES = int(os.environ.get("BENCH_SEARCH_SAMPLES", "25"))
TARGET = int(os.environ.get("BENCH_SEARCH_REWARDS", "1000000"))
PER_ORDER = 5
CEILING_MS = 50.0
# Statuses of the five rewards of the base order: each clone repeats them (2 delivered, 1 redeemed, 1 pending,
# 1 failed), so the funnel and the spend rollup have every kind of row.
BASE_STATUSES = ["delivered", "delivered", "redeemed", "pending", "failed"]


def _setup():
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create, tenant_create
    from testsupport.catalog import make_shop
    from testsupport.portal import make_staff

    tenant = tenant_create(slug=f"bench-search-{uuid.uuid4().hex[:6]}", name="Bench Search")
    key = api_key_create(tenant=tenant, scopes=["read", "write"])
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
        staff = make_staff(tenant, "bench-admin@example.com", "admin")
    connection.set_schema_to_public()
    return tenant, key, shop, staff


def _base_order(api, tenant, shop) -> str:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from bench.common import base_person_rewards

    body = {"type": "digital", "rewards": base_person_rewards(shop.coffee_usd, PER_ORDER)}
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]
    with tenant_context(tenant), connection.cursor() as cursor:
        for position, status in enumerate(BASE_STATUSES):
            cursor.execute(
                "UPDATE orders_reward SET status = %s WHERE order_id = %s AND position = %s",
                [status, order_id, position],
            )
    return order_id


def _columns(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_generated = 'NEVER' ORDER BY ordinal_position",
        [table],
    )
    return [name for (name,) in cursor.fetchall()]


def _grow(tenant, base_order: str, first: int, last: int) -> None:
    """Clone the base order as orders first..last (each with its 5 rewards and their captures)."""
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), transaction.atomic(), connection.cursor() as cursor:
        # ::int — with server-side binding (DB_PREPARED_STATEMENTS, on by default) psycopg types a small Python int
        # as smallint, and generate_series(smallint, smallint) is ambiguous.
        cursor.execute(
            "CREATE TEMP TABLE clone_orders ON COMMIT DROP AS SELECT g, gen_random_uuid() AS id, "
            "now() - make_interval(secs => g * 150) AS created_at FROM generate_series(%s::int, %s::int) AS g",
            [first, last],
        )
        order_columns = _columns(cursor, "orders_order")
        overrides = {"id": "c.id", "external_id": "NULL", "created_at": "c.created_at", "updated_at": "c.created_at"}
        select = ", ".join(overrides.get(name, f"o.{name}") for name in order_columns)
        cursor.execute(
            f"INSERT INTO orders_order ({', '.join(order_columns)}) SELECT {select} FROM clone_orders c "
            "CROSS JOIN orders_order o WHERE o.id = %s",
            [base_order],
        )
        reward_columns = [name for name in _columns(cursor, "orders_reward") if name != "reference"]
        overrides = {
            "id": "gen_random_uuid()",
            "order_id": "c.id",
            "hold_id": "NULL",
            "created_at": "c.created_at",
            "updated_at": "c.created_at",
            "recipient_name": "'Person ' || c.g || '-' || r.position",
            "recipient_email": "'p' || c.g || '.' || r.position || '@example.com'",
            "external_id": "'row-' || c.g || '-' || r.position",
        }
        select = ", ".join(overrides.get(name, f"r.{name}") for name in reward_columns)
        cursor.execute(
            f"INSERT INTO orders_reward ({', '.join(reward_columns)}) SELECT {select} FROM clone_orders c "
            "CROSS JOIN orders_reward r WHERE r.order_id = %s",
            [base_order],
        )
        cursor.execute(
            "INSERT INTO funds_ledgertransaction (id, kind, currency, amount, description, reference, created_at) "
            "SELECT gen_random_uuid(), 'capture', 'USD', r.charge_amount, 'bench capture', 'reward:' || r.id, "
            "r.created_at FROM orders_reward r JOIN clone_orders c ON c.id = r.order_id "
            "WHERE r.status IN ('delivered', 'redeemed')"
        )


def _vacuum(tenant) -> None:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from orders.rollups import rollups_compact

    with tenant_context(tenant):
        rollups_compact()
        with connection.cursor() as cursor:
            for table in ("orders_order", "orders_reward", "funds_ledgertransaction", "orders_rewardstat"):
                cursor.execute(f"VACUUM ANALYZE {table}")


def _measure(client, api, probes: dict[str, tuple[str, str, dict]]) -> dict[str, float]:
    """p95 milliseconds of each probe (warmed up once)."""
    results = {}
    for name, (kind, path, params) in probes.items():
        caller = client if kind == "portal" else api
        caller.get(path, params)  # warm
        samples = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            response = caller.get(path, params)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        results[name] = percentile(samples, 95)
    return results


def _probes(count: int) -> dict[str, tuple[str, str, dict]]:
    middle = max(1, count // PER_ORDER // 2)
    return {
        "portal dashboard": ("portal", "/", {}),
        "portal Find (name part)": ("portal", "/search/", {"q": f"person {middle}-3"}),
        "API rewards ?q= (email part)": ("api", "/api/v1/rewards", {"q": f"p{middle}.2@exam"}),
        "API rewards ?q= (external id)": ("api", "/api/v1/rewards", {"q": f"row-{middle}-1"}),
        "portal orders search by recipient": ("portal", "/orders/", {"recipient": f"person {middle}-"}),
        "API rewards ?recipient_email=": ("api", "/api/v1/rewards", {"recipient_email": f"p{middle}.4@example.com"}),
        "API reports/spend (by program, 30 days)": ("api", "/api/v1/reports/spend", {"group_by": "program"}),
        "API reports/rewards (365 days)": ("api", "/api/v1/reports/rewards", {"from": _days_ago(364)}),
        "API rewards first page": ("api", "/api/v1/rewards", {}),
    }


def _days_ago(days: int) -> str:
    from datetime import timedelta

    from django.utils import timezone

    return (timezone.now().date() - timedelta(days=days)).isoformat()


def run(ctx: Context) -> list[Row]:
    from django.conf import settings
    from django.test import Client

    from testsupport.api import ApiClient
    from testsupport.portal import host_of, sign_in

    settings.API_RATE_LIMIT_PER_MINUTE = 10_000_000  # the bench's own key: measured, not throttled
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the in-process API client's host
    tenant, key, shop, staff = _setup()
    api = ApiClient(key[1], key[0])
    base = _base_order(api, tenant, shop)
    client = Client(HTTP_HOST=host_of(tenant))
    assert sign_in(client, staff.email).status_code == 302
    small_orders = 1000 // PER_ORDER
    _grow(tenant, base, 1, small_orders - 1)
    _vacuum(tenant)
    small = _measure(client, api, _probes(1000))
    started = time.monotonic()
    step = 50_000  # orders per statement: ~250k rewards, each statement a few seconds' worth of index work
    total_orders = TARGET // PER_ORDER
    for first in range(small_orders, total_orders, step):
        _grow(tenant, base, first, min(first + step - 1, total_orders - 1))
        if ctx.remaining() < 120:
            break
    grown = time.monotonic() - started
    _vacuum(tenant)
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_reward")
        (rewards,) = cursor.fetchone()
    large = _measure(client, api, _probes(rewards))
    rows = []
    for name in small:
        ratio = large[name] / small[name] if small[name] else 0
        capped = "search" in name.lower() or "find" in name.lower() or "dashboard" in name or "?q=" in name
        rows.append(
            Row(
                f"at volume: {name}",
                round(large[name], 1),
                f"ms p95 @ {rewards:,} rewards",
                f"1k: {small[name]:.1f} ms; ratio {ratio:.1f}x" + (f"; ceiling {CEILING_MS:g} ms" if capped else ""),
                f"{SAMPLES} samples, in-process (no network)",
                {"p95_1k_ms": small[name], "p95_large_ms": large[name], "rewards": rewards},
            )
        )
    rows.append(Row("at volume: growing to 1M rewards", round(grown, 1), "s", "", "generate_series clones"))
    return rows
