"""Run with DATABASE_URL = a primary and DATABASE_REPLICA_URLS = its streaming replica (scale/test_replica.py).

`python -m scale.replica_probe`: a tenant places an order; once the replica has it, the order list is read from the
replica. With the replica's replay paused, a second order is not in the list (the list really is the replica's) nor
in the rewards report (reports read the replica too), but a read after a write in the same request is the
primary's and sees it.

`python -m scale.replica_probe lagging`, with REPLICA_MAX_LAG_SECONDS=1: a caught-up replica of a primary idle for
longer than the limit serves the list; with its replay paused and a second order committed, once the replica is
more than the limit behind the list is the primary's (the second order is in it) and `db.replica_lagging` is
logged; after the replay resumes, the list is the replica's again.

Prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
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


def replica_has(schema: str, orders: int) -> None:
    """Wait until the replica has replayed the commit of the tenant's `orders`-th order (milliseconds)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        if replica_sql(f'SELECT count(*) FROM "{schema}".orders_order')[0][0] == orders:
            return
        time.sleep(0.05)
    raise AssertionError(f"the replica did not replay order {orders} within 30 s")


class _ApiTenant:
    """A funded tenant with an API key: places orders and lists them through the API, in-process."""

    def __init__(self, slug: str, name: str) -> None:
        self.shop = make_shop()
        self.tenant = tenant_create(slug=f"{slug}{uuid.uuid4().hex[:6]}", name=name)
        with tenant_context(self.tenant):
            funds_deposit(currency="USD", amount=Decimal("1000.00"))
        key = api_key_create(tenant=self.tenant)[1]
        connection.set_schema_to_public()
        self.client = Client()
        self.auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def place(self, external_id: str) -> None:
        body = digital_order(self.shop.coffee_usd, "10.00", external_id=external_id)
        created = self.client.post("/api/v1/orders", body, content_type="application/json", **self.auth)
        assert created.status_code == 201, created.content

    def listed(self) -> tuple[list[str], list[str], list[str]]:
        """The orders' external ids, and the statements the list sent to the replica and to the primary."""
        with (
            CaptureQueriesContext(connections["replica0"]) as on_replica,
            CaptureQueriesContext(connections["default"]) as on_primary,
        ):
            response = self.client.get("/api/v1/orders", **self.auth)
        assert response.status_code == 200, response.content
        ids = sorted(o["external_id"] for o in response.json()["results"])
        return ids, [q["sql"] for q in on_replica], [q["sql"] for q in on_primary]


def main() -> dict:
    api = _ApiTenant("rep", "Replica Co")
    tenant, client, auth, place = api.tenant, api.client, api.auth, api.place

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
        ids, on_replica, on_primary = api.listed()
        return ids, len(on_replica), len([sql for sql in on_primary if "orders_order" in sql])

    place("first")
    replica_has(tenant.schema_name, 1)
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


class _Events(logging.Handler):
    """The router's warnings: (event, alias, lag_seconds)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[str, str, float | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(
            (getattr(record, "event", ""), getattr(record, "alias", ""), getattr(record, "lag_seconds", None))
        )


def lagging() -> dict:
    limit = settings.REPLICA_MAX_LAG_SECONDS
    assert limit == 1, f"run with REPLICA_MAX_LAG_SECONDS=1 (it is {limit})"
    events = _Events()
    logging.getLogger("core.db_routing").addHandler(events)
    api = _ApiTenant("lag", "Lagging Replica Co")
    tenant, place = api.tenant, api.place

    def listed() -> tuple[list[str], int, int]:
        """The orders listed, and the order reads on the replica and on the primary."""
        ids, on_replica, on_primary = api.listed()
        return ids, *[len([sql for sql in on if "orders_order" in sql]) for on in (on_replica, on_primary)]

    def replica_lag() -> float:
        return float(replica_sql(db_routing.LAG_SQL)[0][0] or 0)

    def replayed_ago() -> float:
        """Seconds since the commit the replica replayed last was made on the primary."""
        return float(replica_sql("SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())")[0][0])

    place("first")
    replica_has(tenant.schema_name, 1)
    # Nothing commits on the primary for longer than the limit (autovacuum may, so wait for it): its caught-up
    # replica must not read as behind.
    deadline = time.time() + 60
    while replayed_ago() <= limit + 0.3 and time.time() < deadline:
        time.sleep(0.1)
    idle_for = replayed_ago()
    idle = listed()
    idle_lag = replica_lag()
    replica_sql("SELECT pg_wal_replay_pause()")
    try:
        place("second")
        deadline = time.time() + 30
        while replica_lag() <= limit and time.time() < deadline:
            time.sleep(0.05)
        paused_lag = replica_lag()
        time.sleep(db_routing.LAG_CHECK_SECONDS)  # the idle list's measurement expires
        behind = listed()
        warnings = [event for event in events.seen if event[0] == "db.replica_lagging"]
    finally:
        replica_sql("SELECT pg_wal_replay_resume()")
    replica_has(tenant.schema_name, 2)
    time.sleep(db_routing.LAG_CHECK_SECONDS)  # the lagging measurement expires
    resumed = listed()
    return {
        "idle_for": round(idle_for, 3),
        "idle": idle,
        "idle_lag": idle_lag,
        "paused_lag": round(paused_lag, 3),
        "behind": behind,
        "warnings": warnings,
        "resumed": resumed,
        "resumed_warnings": len([event for event in events.seen if event[0] == "db.replica_lagging"]) - len(warnings),
        "unavailable": [event for event in events.seen if event[0] == "db.replica_unavailable"],
    }


if __name__ == "__main__":
    print(json.dumps(lagging() if sys.argv[1:] == ["lagging"] else main()))
