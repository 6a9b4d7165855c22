"""The scale-out curve on this machine: delivery with 1, 2 and 4 Celery worker processes, and `POST /orders` at 16
clients with 1, 2 and 4 gunicorn workers, so the cost per core is visible.

Delivery is bench/delivery.py's backlog phase (BENCH_SCALEOUT_REWARDS rewards, default 1,000, committed while the
workers do not consume, then timed from their resuming; 4 threads per process). Orders is bench/orders.py's load
at 16 clients for BENCH_SCALEOUT_SECONDS (default 6) per level, gthread with 6 threads per worker. On 2 CPUs more
than two processes only add contention; on a bigger machine the same table shows how far each path scales.
"""

from __future__ import annotations

import os
import signal
import time

from .common import Context, Row, Workers
from .delivery import CONCURRENCY, SmtpSink, _backlog, _place, _wait
from .delivery import _setup as delivery_setup

LEVELS = (1, 2, 4)
REWARDS = int(os.environ.get("BENCH_SCALEOUT_REWARDS", "1000"))
SECONDS = float(os.environ.get("BENCH_SCALEOUT_SECONDS", "6"))


def _delivery(ctx: Context, processes: int, count: int) -> dict:
    big, small, shop = delivery_setup()
    sink = SmtpSink()
    workers = Workers(
        ctx,
        name=f"scaleout{processes}",
        count=processes,
        concurrency=CONCURRENCY,
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_USE_TLS": "false",
        },
    )
    try:
        workers.start()
        warm = [f"warm{n}-{i}@scaleout.example" for n in range(processes) for i in range(8)]
        _place(big, shop.coffee_usd, warm)
        _wait(sink, warm, time.monotonic() + 60)
        return _backlog(workers, sink, big, small, shop.coffee_usd, count)
    finally:
        workers.stop()
        sink.stop()


def _orders(ctx: Context, processes: int) -> dict:
    from . import orders

    key, body = orders._setup()
    port = orders._free_port()
    server = orders._start_server(ctx, port, workers=processes)
    previous = orders.DURATION
    try:
        orders._load(port, key, "GET", "/api/v1/products", None, 2 * processes)  # warm up every worker
        orders.DURATION = SECONDS
        return orders._load(port, key, "POST", "/api/v1/orders", body.encode(), 16)
    finally:
        orders.DURATION = previous
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    load_before = os.getloadavg()
    for processes in LEVELS:
        if ctx.remaining() < 60:
            rows.append(Row(f"scale-out: delivery, {processes} worker process(es)", None, "rewards/s", "",
                            "skipped: out of --budget"))  # fmt: skip
            continue
        result = _delivery(ctx, processes, REWARDS)
        cpu = result["worker_cpu"] / result["count"] * 1000 if result["worker_cpu"] is not None else None
        rows.append(
            Row(
                f"scale-out: delivery, {processes} worker process(es) x {CONCURRENCY} threads",
                round(result["rate"], 1),
                "rewards/s",
                f"{result['rate'] / processes:.1f} rewards/s per process",
                f"backlog of {result['count']:,}; "
                + (f"{cpu:.1f} ms worker CPU per reward; " if cpu is not None else "")
                + ("all arrived" if result["complete"] else "NOT all arrived"),
                {"rate": result["rate"], "worker_cpu_s": result["worker_cpu"], "processes": processes},
            )
        )
    for processes in LEVELS:
        if ctx.remaining() < 30:
            rows.append(Row(f"scale-out: POST /orders, {processes} gunicorn worker(s)", None, "orders/s", "",
                            "skipped: out of --budget"))  # fmt: skip
            continue
        result = _orders(ctx, processes)
        rows.append(
            Row(
                f"scale-out: POST /orders, 16 clients, {processes} gunicorn worker(s) x 6 threads",
                round(result["rps"], 1),
                "orders/s",
                f"{result['rps'] / processes:.1f} orders/s per worker",
                f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, {result['errors']} errors",
                result,
            )
        )
    load_after = os.getloadavg()
    for row in rows:
        row.notes += f"; load {load_before[0]:.1f} → {load_after[0]:.1f}"
    return rows
