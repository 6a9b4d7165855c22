"""Run with DATABASE_URL = a primary and DATABASE_REPLICA_URLS = its streaming replica (scale/test_replica.py).

A tenant places an order; once the replica has it, the order list is read from the replica. With the replica's
replay paused, a second order is not in the list (the list really is the replica's) nor in the rewards report
(reports read the replica too), but a read after a write in the same request is the primary's and sees it. Prints
one JSON line.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import django

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from core import db_routing  # noqa: E402
from funds.services import funds_deposit  # noqa: E402
from orders.models import Order  # noqa: E402
from tenants.services import api_key_create, tenant_create  # noqa: E402
from testsupport.catalog import make_shop  # noqa: E402
from testsupport.orders import digital_order  # noqa: E402


def replica_sql(query: str) -> list[tuple]:
    replica = settings.DATABASES["replica0"]
    dsn = f"host={replica['HOST']} port={replica['PORT']} user={replica['USER']} dbname={replica['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def main() -> dict:
    shop = make_shop()
    tenant = tenant_create(slug=f"rep{uuid.uuid4().hex[:6]}", name="Replica Co")
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount=Decimal("1000.00"))
    key = api_key_create(tenant=tenant)[1]
    connection.set_schema_to_public()
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def place(external_id: str) -> None:
        body = digital_order(shop.coffee_usd, "10.00", external_id=external_id)
        created = client.post("/api/v1/orders", body, content_type="application/json", **auth)
        assert created.status_code == 201, created.content

    def reported() -> tuple[int, int, int]:
        """GET /api/v1/reports/rewards: rewards created today (as the database read says), and the statements on
        the replica and the rollup reads on the primary."""
        with (
            CaptureQueriesContext(connections["replica0"]) as on_replica,
            CaptureQueriesContext(connections["default"]) as on_primary,
        ):
            response = client.get("/api/v1/reports/rewards", **auth)
        assert response.status_code == 200, response.content
        rollup_reads = [q for q in on_primary if "orders_rewardstat" in q["sql"]]
        return sum(response.json()["by_status"].values()), len(on_replica), len(rollup_reads)

    def listed() -> tuple[list[str], int, int]:
        with (
            CaptureQueriesContext(connections["replica0"]) as on_replica,
            CaptureQueriesContext(connections["default"]) as on_primary,
        ):
            response = client.get("/api/v1/orders", **auth)
        assert response.status_code == 200, response.content
        ids = sorted(o["external_id"] for o in response.json()["results"])
        return ids, len(on_replica), len([q for q in on_primary if "orders_order" in q["sql"]])

    place("first")
    deadline = time.time() + 30
    while time.time() < deadline:  # the replica replays the commit (milliseconds)
        if replica_sql(f'SELECT count(*) FROM "{tenant.schema_name}".orders_order')[0][0] == 1:
            break
        time.sleep(0.05)
    caught_up = listed()
    replica_sql("SELECT pg_wal_replay_pause()")
    try:
        place("second")
        stale = listed()
        stale_report = reported()
        # One request that writes, then lists: the list is the primary's (read-your-writes).
        db_routing.request_started()
        with tenant_context(tenant), db_routing.reads_from_replica():
            funds_deposit(currency="USD", amount=Decimal("1.00"))
            after_write = sorted(Order.objects.values_list("external_id", flat=True))
    finally:
        replica_sql("SELECT pg_wal_replay_resume()")
    return {"caught_up": caught_up, "stale": stale, "after_write": after_write, "stale_report": stale_report}


if __name__ == "__main__":
    print(json.dumps(main()))
