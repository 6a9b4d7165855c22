"""Bulk CSV rows per second: validation (dry run) and acceptance (funds held, orders created) of a 100,000-row
file, beside PostgreSQL `COPY` of the same file into a plain table on the same server (the ceiling).

Validation is `batches.upload.batch_upload(dry_run=True)`: the CSV streamed row by row, every row checked
against the catalogue (cached per upload), the valid rows COPY-loaded as BatchRows. Acceptance is
`batch_confirm` (one funds hold for the whole batch) then `batch_process` on BENCH_BULK_PARALLEL threads (2, as
BATCH_PARALLEL_CHUNKS bulk tasks run it) of this process: chunk after chunk, each one transaction creating the
chunk's order, rewards, reward events and per-reward holds (moved out of the batch hold) and marking its rows.
Rows carry a future `deliver_at`, so the rewards wait for beat (scheduled) and no delivery task is published;
the ledger is checked afterwards.

BENCH_BULK_ROWS (default 100000) sets the size; BENCH_BULK_PROFILE=1 prints a cProfile of both phases to
stderr (the top functions by cumulative time). Acceptance stops when the run's --budget is spent (at least
ACCEPT_MIN_SECONDS); the rows accepted by then are measured and the rest of the batch is canceled.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
import uuid

from .common import Context, Row

ROWS = int(os.environ.get("BENCH_BULK_ROWS", "100000"))
PROFILE = os.environ.get("BENCH_BULK_PROFILE") == "1"
ACCEPT_MIN_SECONDS = 30  # acceptance runs at least this long, then stops at the run's --budget
# Chunks accepted at once (threads here, bulk tasks in production: BATCH_PARALLEL_CHUNKS).
PARALLEL = int(os.environ.get("BENCH_BULK_PARALLEL", "2"))


def _setup():
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import tenant_create
    from testsupport.catalog import make_shop

    tenant = tenant_create(slug=f"bench-bulk-{uuid.uuid4().hex[:6]}", name="Bench Bulk")
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
    connection.set_schema_to_public()
    return tenant, shop


def _file(product, rows: int, start: int = 0) -> bytes:
    """`rows` rows of one product, numbered from `start` (the recipients and external ids differ by number)."""
    from testsupport.batches import csv_bytes

    return csv_bytes(
        {
            "recipient_name": f"Bench Recipient {i}",
            "recipient_email": f"r{i}@bulk.bench.example",
            "product_id": str(product.id),
            "amount": ("10", "25", "50")[i % 3],
            "currency": "USD",
            "delivery_method": "email",
            "message": "Thank you for a great year!",
            "sender_name": "People Team",
            "deliver_at": "2099-01-01T09:00:00Z",
            "external_id": f"bench-{i}",
        }
        for i in range(start, start + rows)
    )


def _profiled(func):
    if not PROFILE:
        return func()
    profiler = cProfile.Profile()
    result = profiler.runcall(func)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
    print(out.getvalue(), file=sys.stderr)
    return result


def _one_chunk(batch_id) -> tuple[float, float, int, int]:
    """(milliseconds of one chunk transaction, peak MB traced during the next one: tracing slows it down, SQL
    statements and COPYs of the first one)."""
    import tracemalloc
    from unittest import mock

    import psycopg
    from django.db import connection

    from batches.processing import batch_process_chunk

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    copy = mock.patch.object(psycopg.Cursor, "copy", autospec=True, side_effect=psycopg.Cursor.copy)
    started = time.perf_counter()
    with connection.execute_wrapper(count), copy as copies:
        batch_process_chunk(batch_id=batch_id)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    batch_process_chunk(batch_id=batch_id)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed * 1000, peak / 1e6, statements, copies.call_count


def _backend_cpu_seconds() -> float | None:
    """CPU seconds this connection's PostgreSQL backend has used so far (its /proc entry: a server on this host
    only), None when it cannot be read."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _accept(tenant, batch_id, allowed: float, parallel: int, server_cpu: list[float | None]) -> str:
    """batch_process on `parallel` threads at once, as BATCH_PARALLEL_CHUNKS bulk tasks run it; "done" when the
    batch finished. Appends each thread's PostgreSQL backend CPU seconds to `server_cpu`."""
    import threading

    from django.db import connections
    from django_tenants.utils import tenant_context

    from batches.processing import batch_process

    outcomes: list[str] = []

    def process() -> str:
        before = _backend_cpu_seconds()
        outcome = batch_process(batch_id=batch_id, max_seconds=allowed)
        after = _backend_cpu_seconds()
        server_cpu.append(None if before is None or after is None else after - before)
        return outcome

    def work() -> None:
        with tenant_context(tenant):
            outcomes.append(process())
        connections.close_all()

    if parallel == 1:
        return process()
    threads = [threading.Thread(target=work) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if "done" in outcomes:
        return "done"
    return "more" if "more" in outcomes else "idle"


def _copy_ceiling(data: bytes) -> float:
    """Seconds to COPY the same CSV (header skipped) into a plain table without indexes."""
    from django.db import connection

    from batches.csvfile import ALL_COLUMNS

    columns = ", ".join(f"{name} text" for name in ALL_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS public.bench_bulk_copy")
        cursor.execute(f"CREATE TABLE public.bench_bulk_copy ({columns})")
        started = time.perf_counter()
        with cursor.cursor.copy("COPY public.bench_bulk_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            for offset in range(0, len(data), 1 << 20):
                copy.write(data[offset : offset + (1 << 20)])
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM public.bench_bulk_copy")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE public.bench_bulk_copy")
    assert copied == data.count(b"\r\n") - 1
    return elapsed


def run(ctx: Context) -> list[Row]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.lifecycle import batch_cancel, batch_confirm
    from batches.models import Batch
    from batches.processing import CHUNK
    from batches.upload import batch_upload
    from funds.selectors import ledger_invariant_violations
    from orders.models import Reward

    tenant, shop = _setup()
    rows = ROWS
    data = _file(shop.coffee_usd, rows)
    with tenant_context(tenant):
        started = time.perf_counter()
        batch = _profiled(lambda: batch_upload(file=io.BytesIO(data), file_name="bench.csv", size=len(data)))
        validate_s = time.perf_counter() - started
        assert batch.valid_rows == rows, (batch.valid_rows, batch.error_rows)
        started = time.perf_counter()
        batch_confirm(batch_id=batch.id)
        # The first chunks, measured alone (time, peak memory, statements).
        chunk_ms, chunk_mb, chunk_statements, chunk_copies = _one_chunk(batch.id)
        allowed = max(ACCEPT_MIN_SECONDS, ctx.remaining() - 60)  # the rest of the run's budget, less a margin
        server_cpu: list[float | None] = []
        cpu_started = time.process_time()
        outcome = _profiled(lambda: _accept(tenant, batch.id, allowed, PARALLEL, server_cpu))
        accept_s = time.perf_counter() - started
        accept_cpu = time.process_time() - cpu_started  # this process's threads, after the two chunks alone
        accepted = Batch.objects.get(pk=batch.id).rows_done
        if outcome != "done":  # out of time: what was accepted is measured, the rest released
            batch_cancel(batch_id=batch.id)
        assert Reward.objects.count() == accepted
        violations = ledger_invariant_violations()
        assert violations == [], violations
    connection.set_schema_to_public()
    load = f"{os.getloadavg()[0]:.1f}"
    # CPU per row of the chunks after the two measured alone (tracing slowed the second one down).
    after_alone = max(accepted - 2 * CHUNK, 1)
    measured = [seconds for seconds in server_cpu if seconds is not None]
    server_note = (
        f", {sum(measured) / after_alone * 1e6:.0f} ms in PostgreSQL" if len(measured) == len(server_cpu) else ""
    )
    copy_s = _copy_ceiling(data)
    copy_rps = rows / copy_s
    size = f"{rows} rows, {len(data) / 1e6:.1f} MB"
    results = [
        ("bulk CSV validation (dry run)", rows / validate_s, f"{size}; {validate_s:.1f} s"),
        ("bulk CSV acceptance (hold + orders)", accepted / accept_s,
         f"{accepted} rows in {accept_s:.1f} s, {PARALLEL} chunks at once; {accept_cpu / after_alone * 1e6:.0f} ms "
         f"CPU per 1,000 rows in this process{server_note}; CHUNK={CHUNK}: {chunk_ms:.0f} ms alone, "
         f"{chunk_statements} SQL statements + {chunk_copies} COPY, {chunk_mb:.1f} MB peak; "
         f"target >= 20000 rows/s; load {load}"),
        ("bulk CSV validation + acceptance", 1 / (validate_s / rows + accept_s / accepted),
         "per-row cost of both phases; target >= 10000 rows/s"),
    ]  # fmt: skip
    out = [
        Row(name, round(rps), "rows/s", f"{rps / copy_rps:.1%} of COPY {copy_rps:,.0f} rows/s", notes,
            extra={"rows": rows, "validate_s": validate_s, "accept_s": accept_s, "copy_s": copy_s})
        for name, rps, notes in results
    ]  # fmt: skip
    out.append(Row("PostgreSQL COPY of the same CSV", round(copy_rps), "rows/s", "ceiling", "plain table, no index"))
    return out
