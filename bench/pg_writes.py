"""PostgreSQL's own CPU per reward written, for two schemas of the same database side by side (A/B).

    .venv/bin/python bench/pg_writes.py                          # orders and bulk chunks, tenant A vs B
    .venv/bin/python bench/pg_writes.py --variant drop.sql       # B's schema changed by drop.sql first
    .venv/bin/python bench/pg_writes.py --orders 300 --rounds 8 --bulk-rows 40000
    .venv/bin/python bench/pg_writes.py --server-binding         # B's orders with prepared statements

Same throwaway database as `make bench` (a claimed slot, dropped at the end unless --keep-db). Two tenants on
the same server; `--variant FILE` runs FILE's SQL in tenant B's schema (search_path = B, public; statements end
with `;` and a newline) before measuring, so A is the schema the migrations make and B the change under test (or,
with the backward SQL of some migrations, the schema before them). What is measured is the CPU of the PostgreSQL
backend serving this process: its time on a CPU from /proc/<pid>/schedstat (nanoseconds; a server on this host
only), which depends far less on the machine's load than a rate does.

- orders: `POST /api/v1/orders` (one 10.00 USD email reward, its own Idempotency-Key) through the whole
  Django stack with the test client, as bench/profile_orders.py does; the hold is posted during COMMIT. Each
  round is `--orders` orders of A and of B alternating A, B, A, B on one connection, each order's CPU read between
  orders, so both see the same moment's machine (the same schema on both sides gives B/A within ±1.5 %).
  `--server-binding` (and `--perf`, `--clean-pending`) measure A's and B's orders in rounds of their own instead,
  each on a new connection: B's with Django's `server_side_binding` and psycopg preparing a statement its fifth
  time (`--no-prepare`: binding only).
- bulk: a confirmed batch per tenant, its chunks of `--chunk` rows processed one at a time by
  `batch_process_chunk`, as a bulk task does, A's and B's chunks alternating. With `--server-binding`, B's chunks
  run on a thread of their own whose connection binds on the server and prepares (one connection for every
  chunk, as a bulk worker's): a statement is prepared at its sixth chunk and may get a generic plan from about
  the eleventh, so give the batch enough rows (`--bulk-rows 100000`, the most a file may have: 19 chunks of
  5,000 measured, each B/A pair printed in order); `--plan-cache-mode force_custom_plan` plans each of them anew.

`--clean-pending` also runs `gin_clean_pending_list` on every GIN index of the tenant's schema at the end of each
round (every `--clean-every` bulk chunks), inside the measurement, so a GIN index with `fastupdate` is charged the
merge that autovacuum would otherwise do later. `--perf PREFIX` records the backend with `perf` (DWARF call
graphs) during A's first order round and second bulk chunk. The ledger invariants are checked in both tenants at
the end."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false")
# A (and B, but for --server-binding) bind client-side, as before prepared statements became the default.
os.environ.setdefault("DB_PREPARED_STATEMENTS", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")


PREPARE_THRESHOLD: int | None = 5  # with --server-binding: psycopg prepares a statement its 5th time (None: never)
PLAN_CACHE_MODE: str | None = None  # with --server-binding: B's bulk connection's plan_cache_mode (None: auto)


def backend_cpu() -> tuple[int, float]:
    """(pid, CPU seconds) of the PostgreSQL backend of Django's default connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/schedstat") as stat:  # nanoseconds on a CPU (utime + stime come in 10 ms ticks)
        return pid, int(stat.read().split()[0]) / 1e9


def _tenant(label: str, shop):
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create, tenant_create

    tenant = tenant_create(slug=f"pgw-{label}-{uuid.uuid4().hex[:6]}", name=f"PG writes {label}")
    _, key = api_key_create(tenant=tenant)
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="1000000000")
    connection.set_schema_to_public()
    return tenant, key


def _apply(tenant, sql: str) -> None:
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(f'SET search_path = "{tenant.schema_name}", public')
        for statement in [s.strip() for s in sql.split(";\n") if s.strip()]:
            cursor.execute(statement)
    connection.set_schema_to_public()


def _gin_indexes(tenant) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'gin' AND n.nspname = %s",
            [tenant.schema_name],
        )
        return [row[0] for row in cursor.fetchall()]


def _clean(indexes: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for index in indexes:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])


@contextmanager
def _perf(pid: int, out: str | None):
    """`perf record` of the backend while the block runs (when `out` names a file)."""
    if not out:
        yield
        return
    spy = subprocess.Popen(
        ["perf", "record", "--call-graph", "dwarf,16384", "-F", "1000", "-p", str(pid), "-o", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait()


def _order_round(
    key: str, body: str, n: int, clean: list[str], perf: str | None = None, server_binding: bool = False
) -> float:
    """PostgreSQL CPU ms per order over n orders (on a new connection, after 10 orders on it)."""
    from django.db import connection
    from django.test import Client

    connection.close()
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["server_side_binding"] = server_binding
    options["prepare_threshold"] = PREPARE_THRESHOLD if server_binding else None
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="127.0.0.1")
    _orders(client, body, 10)
    pid, before = backend_cpu()
    with _perf(pid, perf):
        _orders(client, body, n)
    _clean(clean)
    connection.set_schema_to_public()
    pid_after, after = backend_cpu()
    assert pid == pid_after, "the connection was replaced during the round"
    return (after - before) * 1000 / n


def _order_pairs(key_a: str, key_b: str, body: str, n: int) -> tuple[float, float]:
    """PostgreSQL CPU ms per order of A and of B over n orders each, alternating A, B, A, B on one connection (each
    order's own CPU read from the backend between orders), so both see the same moment's machine."""
    from django.db import connection
    from django.test import Client

    clients = [Client(HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="127.0.0.1") for key in (key_a, key_b)]
    pid, _ = backend_cpu()
    stat = f"/proc/{pid}/schedstat"
    spent = [0, 0]
    with open(stat) as handle:
        for i in range(2 * n):
            handle.seek(0)
            before = int(handle.read().split()[0])
            _orders(clients[i % 2], body, 1)
            handle.seek(0)
            spent[i % 2] += int(handle.read().split()[0]) - before
    connection.set_schema_to_public()
    assert backend_cpu()[0] == pid, "the connection was replaced during the round"
    return spent[0] / 1e6 / n, spent[1] / 1e6 / n


def _orders(client, body: str, n: int) -> None:
    for _ in range(n):
        response = client.post(
            "/api/v1/orders", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
        )
        assert response.status_code == 201, response.content


def _bulk_batch(tenant, product, rows: int, start: int):
    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.lifecycle import batch_confirm
    from batches.upload import batch_upload
    from bench.bulk import _file

    data = _file(product, rows, start)
    with tenant_context(tenant):
        batch = batch_upload(file=io.BytesIO(data), file_name="pgw.csv", size=len(data))
        assert batch.valid_rows == rows, (batch.valid_rows, batch.error_rows)
        batch_confirm(batch_id=batch.id)
    connection.set_schema_to_public()
    return batch.id


def _bulk_round(
    tenant, batch_id, chunk: int, clean: list[str], perf: str | None = None, clean_now: bool = True
) -> tuple[float, int]:
    """(PostgreSQL CPU ms per 1,000 rows, rows) of one chunk."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.models import Batch
    from batches.processing import batch_process_chunk

    with tenant_context(tenant):
        done_before = Batch.objects.get(pk=batch_id).rows_done
        pid, before = backend_cpu()
        with _perf(pid, perf):
            outcome = batch_process_chunk(batch_id=batch_id, chunk=chunk)
        if clean_now:
            _clean(clean)
        pid_after, after = backend_cpu()
        done = Batch.objects.get(pk=batch_id).rows_done - done_before
    connection.set_schema_to_public()
    assert pid == pid_after, "the connection was replaced during the chunk"
    assert outcome == "more" and done == chunk, (outcome, done)
    return (after - before) * 1e6 / done, done


def _bind_this_thread() -> None:
    """This thread's Django connection binds on the server and prepares what it repeats (connections are per thread;
    the settings dict they share is copied, not changed)."""
    from django.db import connection

    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    options["prepare_threshold"] = PREPARE_THRESHOLD
    if PLAN_CACHE_MODE:
        options["options"] = f"-c plan_cache_mode={PLAN_CACHE_MODE}"
    connection.settings_dict = {**connection.settings_dict, "OPTIONS": options}


def _prepared_plans() -> tuple[int, int, int]:
    """(statements prepared on this connection, of them run with a generic plan at least once, generic runs)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE generic_plans > 0), coalesce(sum(generic_plans), 0) "
            "FROM pg_prepared_statements"
        )
        return cursor.fetchone()


def _check(tenant) -> None:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.selectors import ledger_invariant_violations

    with tenant_context(tenant):
        violations = ledger_invariant_violations()
    connection.set_schema_to_public()
    assert violations == [], violations


def _summary(a: list[float], b: list[float]) -> str:
    in_order = [y / x for x, y in zip(a, b, strict=False)]
    ratios = sorted(in_order)
    return (
        f"A median {statistics.median(a):.3f} {[round(x, 2) for x in a]}\n"
        f"    B median {statistics.median(b):.3f} {[round(x, 2) for x in b]}\n"
        f"    B/A per pair: median {statistics.median(ratios):.3f} {[round(r, 3) for r in ratios]}\n"
        f"    B/A in order: {[round(r, 3) for r in in_order]}; B/A of the totals {sum(b) / sum(a):.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", type=Path, help="SQL run in tenant B's schema before measuring")
    parser.add_argument("--orders", type=int, default=200, help="orders per round (0: none)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per tenant, alternating")
    parser.add_argument("--warm", type=int, default=50, help="orders per tenant before measuring")
    parser.add_argument("--bulk-rows", type=int, default=0, help="rows of each tenant's batch (0: no bulk)")
    parser.add_argument("--chunk", type=int, default=5000, help="rows per bulk chunk")
    parser.add_argument("--preload", type=int, default=0, help="rewards written into each tenant first (bulk)")
    parser.add_argument("--clean-pending", action="store_true", help="merge GIN pending lists in each round")
    parser.add_argument("--clean-every", type=int, default=1, help="with --clean-pending: every N bulk chunks")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--server-binding", action="store_true", help="B's orders with server-side binding (prepared statements)"
    )
    parser.add_argument("--no-prepare", action="store_true", help="with --server-binding: bind, prepare nothing")
    parser.add_argument(
        "--plan-cache-mode", choices=["force_custom_plan", "force_generic_plan"], help="B's bulk connection's plans"
    )
    parser.add_argument("--perf", help="perf record A's first order round and bulk chunk into PREFIX-*.data")
    args = parser.parse_args()
    global PREPARE_THRESHOLD, PLAN_CACHE_MODE
    if args.no_prepare:
        PREPARE_THRESHOLD = None
    PLAN_CACHE_MODE = args.plan_cache_mode

    from bench.profile_orders import setup_database
    from bench.run import BENCH_DATABASE, recreate_database

    server_url, (slot_client, slot), database_url, _ = setup_database()
    report: dict = {"loadavg_start": os.getloadavg()}
    try:
        from django.db import connection, connections

        from testsupport.catalog import make_shop

        shop = make_shop()
        connection.set_schema_to_public()
        (tenant_a, key_a), (tenant_b, key_b) = _tenant("a", shop), _tenant("b", shop)
        if args.variant:
            _apply(tenant_b, args.variant.read_text())
        clean_a = _gin_indexes(tenant_a) if args.clean_pending else []
        clean_b = _gin_indexes(tenant_b) if args.clean_pending else []
        body = json.dumps(
            {
                "type": "digital",
                "rewards": [
                    {
                        "product_id": str(shop.coffee_usd.id),
                        "amount": "10.00",
                        "currency": "USD",
                        "delivery_method": "email",
                        "recipient": {"name": "Bench Recipient", "email": "bench@example.com"},
                    }
                ],
            }
        )
        if args.preload:
            for tenant in (tenant_a, tenant_b):
                batch_id = _bulk_batch(tenant, shop.coffee_usd, args.preload, 10_000_000)
                while True:
                    from django_tenants.utils import tenant_context

                    from batches.processing import batch_process

                    with tenant_context(tenant):
                        if batch_process(batch_id=batch_id, max_seconds=3600) == "done":
                            break
                connection.set_schema_to_public()
        if args.orders:
            _order_round(key_a, body, args.warm, [])
            _order_round(key_b, body, args.warm, [])
            a, b = [], []
            for i in range(args.rounds):
                perf = f"{args.perf}-orders.data" if args.perf and i == 0 else None
                if args.server_binding or args.clean_pending or perf:
                    a.append(_order_round(key_a, body, args.orders, clean_a, perf))
                    b.append(_order_round(key_b, body, args.orders, clean_b, server_binding=args.server_binding))
                else:
                    pair = _order_pairs(key_a, key_b, body, args.orders)
                    a.append(pair[0])
                    b.append(pair[1])
            report["orders"] = (a, b)
            print(f"PostgreSQL CPU ms per order ({args.orders} per round):\n    {_summary(a, b)}", flush=True)
        if args.bulk_rows:
            batch_a = _bulk_batch(tenant_a, shop.coffee_usd, args.bulk_rows, 0)
            batch_b = _bulk_batch(tenant_b, shop.coffee_usd, args.bulk_rows, 0)
            a, b = [], []
            # A's chunks on a connection without binding (the order rounds may have left one with it open).
            connection.close()
            connection.settings_dict.setdefault("OPTIONS", {}).update(server_side_binding=False, prepare_threshold=None)
            bound = ThreadPoolExecutor(1, initializer=_bind_this_thread) if args.server_binding else None
            try:
                for i in range(args.bulk_rows // args.chunk - 1):  # the last chunk also finishes the batch
                    perf = f"{args.perf}-bulk.data" if args.perf and i == 1 else None
                    now = (i + 1) % args.clean_every == 0
                    a.append(_bulk_round(tenant_a, batch_a, args.chunk, clean_a, perf, now)[0])
                    b_round = (_bulk_round, tenant_b, batch_b, args.chunk, clean_b, None, now)
                    b.append((bound.submit(*b_round).result() if bound else b_round[0](*b_round[1:]))[0])
                if bound:
                    prepared, generic, runs = bound.submit(_prepared_plans).result()
                    print(f"B's bulk connection: {prepared} prepared statements, {generic} of them run with a generic "
                          f"plan ({runs} runs)", flush=True)  # fmt: skip
            finally:
                if bound:
                    bound.submit(connections.close_all).result()
                    bound.shutdown()
            report["bulk"] = (a, b)
            print(f"PostgreSQL CPU ms per 1,000 bulk rows (chunks of {args.chunk}):\n    {_summary(a, b)}", flush=True)
        _check(tenant_a)
        _check(tenant_b)
        report["loadavg_end"] = os.getloadavg()
        print(f"load average start {report['loadavg_start']}, end {report['loadavg_end']}")
    finally:
        from django.db import connections

        connections.close_all()
        slot_client.delete(f"rp:test-slot:{slot}")
        if args.keep_db:
            print(f"kept {database_url}")
        else:
            recreate_database(server_url, BENCH_DATABASE.format(slot=slot), create=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
