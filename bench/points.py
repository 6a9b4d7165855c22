"""Points: awards per second through the HTTP API, and a 100,000-row points CSV (validation and acceptance).

Awards: `POST /api/v1/points/awards` (a new award each time, 1 and 16 clients) against the same production-like
gunicorn server as the orders benchmark; each award posts to the points ledger and holds its value in the
funds ledger, so its ceiling is `POST /orders` at the same clients on the same server (the same hold, one
transaction). The CSV: `batch_upload(kind=points, dry_run=True)` then `batch_confirm` + `batch_process` in this
process (one bulk worker's work), beside PostgreSQL `COPY` of the same file into a plain table (the ceiling).
Both phases end with the funds and points ledgers checked.

BENCH_POINTS_ROWS (default 100000) sets the CSV's size.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid

from .common import Context, Row
from .orders import _free_port, _load, _start_server

ROWS = int(os.environ.get("BENCH_POINTS_ROWS", "100000"))
KUDOS = {"name": "Kudos", "points_per_unit": 100, "currency": "USD", "expire_after_days": 365}


def _tenant(label: str, people: int):
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from people.models import Person
    from programs.services import program_create
    from tenants.services import api_key_create, tenant_create

    tenant = tenant_create(slug=f"bench-{label}-{uuid.uuid4().hex[:6]}", name=f"Bench {label}")
    _, key = api_key_create(tenant=tenant)
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
        program_create(slug="kudos", name="Kudos", points=KUDOS)
        for start in range(0, people, 5000):  # set-up only: people as an HR import would leave them
            Person.objects.bulk_create(
                [
                    Person(external_id=f"E-{i}", name=f"Person {i}", email=f"p{i}@bench.example")
                    for i in range(start, min(start + 5000, people))
                ]
            )
    connection.set_schema_to_public()
    return tenant, key


def _check_books(tenant) -> None:
    from django_tenants.utils import tenant_context

    from funds.selectors import ledger_invariant_violations
    from points.selectors import points_invariant_violations

    with tenant_context(tenant):
        violations = ledger_invariant_violations() + points_invariant_violations()
    assert violations == [], violations[:5]


def _api_rows(ctx: Context) -> list[Row]:
    from testsupport.catalog import make_shop

    tenant, key = _tenant("points-api", 50)
    shop = make_shop()
    award = json.dumps({"person_external_id": "E-7", "program": "kudos", "points": 250, "reason": "bench"}).encode()
    order = json.dumps({"type": "digital", "rewards": [{
        "product_id": str(shop.coffee_usd.id), "amount": "10.00", "currency": "USD", "delivery_method": "email",
        "recipient": {"name": "Bench", "email": "bench@example.com"}}]}).encode()  # fmt: skip
    port = _free_port()
    server = _start_server(ctx, port)
    results = {}
    try:
        _load(port, key, "GET", "/api/v1/programs", None, 4)  # warm up every gunicorn worker
        for clients in (1, 16):
            results[("awards", clients)] = _load(port, key, "POST", "/api/v1/points/awards", award, clients)
        results[("orders", 16)] = _load(port, key, "POST", "/api/v1/orders", order, 16)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    _check_books(tenant)
    ceiling = results[("orders", 16)]["rps"]
    rows = []
    for clients in (1, 16):
        awards = results[("awards", clients)]
        comparison = f"{awards['rps'] / ceiling:.0%} of POST /orders at 16 clients ({ceiling:.0f}/s)"
        rows.append(Row(f"POST /points/awards, {clients} client(s)", round(awards["rps"], 1), "awards/s", comparison,
                        f"p50 {awards['p50_ms']:.1f} ms, p99 {awards['p99_ms']:.1f} ms, {awards['errors']} errors",
                        extra=awards))  # fmt: skip
    rows.append(Row("POST /orders, 16 clients (points' ceiling)", round(ceiling, 1), "orders/s", "ceiling",
                    "same server, same run", extra=results[("orders", 16)]))  # fmt: skip
    return rows


def _copy_seconds(data: bytes) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS public.bench_points_copy")
        cursor.execute("CREATE TABLE public.bench_points_copy (person text, points text, reason text, ext text)")
        started = time.perf_counter()
        with cursor.cursor.copy("COPY public.bench_points_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(data)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE public.bench_points_copy")
    return elapsed


def _csv_rows(ctx: Context) -> list[Row]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.lifecycle import batch_confirm
    from batches.models import Batch, BatchKind
    from batches.processing import batch_process
    from batches.upload import batch_upload
    from points.models import PointsAward

    tenant, _ = _tenant("points-csv", ROWS)
    lines = ["person_external_id,points,reason,external_id"]
    lines += [f"E-{i},{(100, 250, 500)[i % 3]},Year-end bonus,bench-{i}" for i in range(ROWS)]
    data = ("\r\n".join(lines) + "\r\n").encode()
    with tenant_context(tenant):
        started = time.perf_counter()
        batch = batch_upload(kind=BatchKind.POINTS, file=io.BytesIO(data), file_name="points.csv", size=len(data),
                             program_slug="kudos")  # fmt: skip
        validate_s = time.perf_counter() - started
        assert batch.valid_rows == ROWS, (batch.valid_rows, batch.error_rows)
        started = time.perf_counter()
        batch_confirm(batch_id=batch.id)
        outcome = batch_process(batch_id=batch.id, max_seconds=max(60, ctx.remaining() - 60))
        accept_s = time.perf_counter() - started
        accepted = Batch.objects.get(pk=batch.id).rows_done
        assert outcome == "done" and PointsAward.objects.count() == accepted == ROWS, (outcome, accepted)
    _check_books(tenant)
    connection.set_schema_to_public()
    copy_rps = ROWS / _copy_seconds(data)
    size = f"{ROWS} rows, {len(data) / 1e6:.1f} MB"
    return [
        Row("points CSV validation (dry run)", round(ROWS / validate_s), "rows/s",
            f"{ROWS / validate_s / copy_rps:.1%} of COPY", f"{size}; {validate_s:.1f} s"),
        Row("points CSV acceptance (hold + awards)", round(accepted / accept_s), "rows/s",
            f"{accepted / accept_s / copy_rps:.1%} of COPY", f"{accepted} awards in {accept_s:.1f} s"),
        Row("PostgreSQL COPY of the same points CSV", round(copy_rps), "rows/s", "ceiling", "plain table, no index"),
    ]  # fmt: skip


def run(ctx: Context) -> list[Row]:
    return _api_rows(ctx) + _csv_rows(ctx)
