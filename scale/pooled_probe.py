"""Run inside the settings of a process whose DATABASE_URL is PgBouncer (scale/test_pgbouncer.py starts it).

Two fresh tenants, then their requests interleaved over the pooler: first statement by statement on two
connections, then 8 threads sending API reads and writes for both tenants at once. Prints one JSON line: what
each request saw, what was written where, and the pool's server connections. The tenants are dropped at the end.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from decimal import Decimal

import django

django.setup()

from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from funds.services import funds_deposit  # noqa: E402
from orders.models import Order  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import api_key_create, tenant_create  # noqa: E402
from testsupport.catalog import make_shop  # noqa: E402
from testsupport.orders import digital_order  # noqa: E402

THREADS, REQUESTS = 8, 12


def main() -> dict:
    shop = make_shop()
    suffix = uuid.uuid4().hex[:6]
    tenants, keys = [], []
    for letter in "ab":
        tenant = tenant_create(slug=f"pool{letter}{suffix}", name=f"Pooled {letter}")
        with tenant_context(tenant):
            funds_deposit(currency="USD", amount=Decimal("10000.00"))
        keys.append(api_key_create(tenant=tenant)[1])
        tenants.append(tenant)
    connection.set_schema_to_public()
    try:
        return _interleave(tenants, keys, shop)
    finally:
        connection.set_schema_to_public()
        for tenant in tenants:
            for twin in Tenant.objects.filter(slug=tenant.slug).order_by("-is_sandbox"):
                twin.delete(force_drop=True)


def _interleave(tenants, keys, shop) -> dict:
    # 1. Statement by statement: two connections, each in its tenant, taking turns on the one server connection.
    pair = [connections.create_connection("default") for _ in tenants]
    for conn, tenant in zip(pair, tenants, strict=True):
        conn.set_tenant(tenant)
    statement_mismatches = 0
    for _ in range(50):
        for conn, tenant in zip(pair, tenants, strict=True):
            with conn.cursor() as cursor:
                cursor.execute("SELECT current_schema(), count(*) FROM orders_order")
                schema, _ = cursor.fetchone()
            statement_mismatches += schema != tenant.schema_name
    for conn in pair:
        conn.close()
    if "--statements-only" in sys.argv:
        return {"statement_mismatches": statement_mismatches}
    # 2. Requests: reads and writes of both tenants from 8 threads at once.
    seen: list[dict] = []
    lock = threading.Lock()

    def client_thread(index: int) -> None:
        which = index % 2
        client = Client()
        auth = {"HTTP_AUTHORIZATION": f"Bearer {keys[which]}"}
        for n in range(REQUESTS):
            body = digital_order(shop.coffee_usd, "10.00", external_id=f"t{which}-{index}-{n}")
            created = client.post("/api/v1/orders", body, content_type="application/json",
                                  HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex, **auth)  # fmt: skip
            listed = client.get("/api/v1/orders", {"limit": 20}, **auth)
            balance = client.get("/api/v1/balances", **auth)
            with lock:
                seen.append(
                    {
                        "tenant": which,
                        "created": created.status_code,
                        "listed": listed.status_code,
                        "foreign": [
                            o["external_id"] for o in listed.json().get("data", listed.json().get("results", []))
                            if not str(o.get("external_id", "")).startswith(f"t{which}-")
                        ] if listed.status_code == 200 else None,
                        "balance": balance.status_code,
                        "problem": created.json() if created.status_code != 201 else None,
                    }
                )  # fmt: skip
        connection.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = {}
    for which, tenant in enumerate(tenants):
        with tenant_context(tenant):
            ids = list(Order.objects.values_list("external_id", flat=True))
        stored[which] = {"orders": len(ids), "foreign": [i for i in ids if not i.startswith(f"t{which}-")]}
    return {
        "statement_mismatches": statement_mismatches,
        "requests": len(seen),
        "statuses": sorted({(s["created"], s["listed"], s["balance"]) for s in seen}),
        "problems": [s["problem"] for s in seen if s["problem"]][:2],
        "foreign_in_lists": sum(len(s["foreign"] or []) for s in seen),
        "stored": stored,
        "expected_per_tenant": THREADS // 2 * REQUESTS,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
    sys.stdout.flush()
