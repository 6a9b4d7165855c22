"""Orders through the HTTP API against pgbench's TPC-B on the same PostgreSQL server.

The server is production-like: gunicorn as gunicorn.conf.py configures it (threaded workers, 3 processes x
WEB_THREADS threads) with production settings and DEBUG off; BENCH_GUNICORN_ARGS adds gunicorn options (e.g.
"--threads 4 --reuse-port") and BENCH_ORDERS_CLIENTS the client levels ("1,16"). The load
generator is separate processes (so it does not share the server's GIL), each with keep-alive HTTP
connections; every request is a real `POST /api/v1/orders` (one 10.00 USD email reward, its own
Idempotency-Key), which validates, converts, holds funds and writes the order, reward, hold, ledger
entries, event and idempotency record in one transaction. Also: `GET /api/v1/products` latency.
Both measured at 1 and 16 concurrent clients. The ceiling is pgbench TPC-B (`-c 16`) on a scratch
database of the same server.

The load generator is `wrk` (Debian's package) with bench/orders.lua when it is installed: a C client that
leaves the two cores to the server and PostgreSQL (the Python client below costs about as much CPU per request
as the server's own HTTP handling). Without wrk, or with BENCH_ORDERS_CLIENT=python, it is 4 processes × 4
threads of http.client. Each row says which one ran, and the web processes' CPU per request (gunicorn master
and workers, user + system), a figure that depends much less on what else the machine runs than the rate does.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .common import Context, Row, memory_row, peak_memory, percentile

ROOT = Path(__file__).resolve().parent.parent
DURATION = float(os.environ.get("BENCH_ORDERS_SECONDS", "10"))
CLIENT_LEVELS = tuple(int(n) for n in os.environ.get("BENCH_ORDERS_CLIENTS", "1,16").split(","))
PROCESSES = 4  # load generator processes; 16 clients = 4 processes x 4 threads


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client_loop(args: tuple) -> list[tuple[float, int]]:
    """One load-generator thread group: (latency seconds, status) per request until the deadline."""
    import threading

    port, key, method, path, body_template, threads, deadline = args
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local = []
        while time.time() < deadline:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            body = None
            if method == "POST":
                headers["Idempotency-Key"] = uuid.uuid4().hex
                body = body_template
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            local.append((time.perf_counter() - started, status))
        with lock:
            results.extend(local)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def _client() -> str:
    """'wrk' when it is installed (and not overridden by BENCH_ORDERS_CLIENT=python), else 'python'."""
    wanted = os.environ.get("BENCH_ORDERS_CLIENT", "wrk")
    return "wrk" if wanted == "wrk" and shutil.which("wrk") else "python"


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children (gunicorn's master and workers)."""
    import psutil

    parent = psutil.Process(pid)
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postmaster_pid() -> int | None:
    """The PostgreSQL server's main process when it runs on this machine and we may read it (else None)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        parent = psutil.Process(backend).parent()
    except (psutil.Error, ValueError):
        return None
    return parent.pid if parent is not None and "postgres" in parent.name() else None


def _load(
    port: int, key: str, method: str, path: str, body: bytes | None, clients: int, server_pid: int | None = None
) -> dict:
    """One closed-loop run of `clients` concurrent clients for DURATION seconds; with `server_pid`, also the
    server's CPU per successful request, and PostgreSQL's (every process of the server: the backends, which the
    web processes keep open, and its background writers) when the server runs on this machine."""
    cpu_before = _tree_cpu(server_pid) if server_pid else 0.0
    postmaster = _postmaster_pid() if server_pid else None
    pg_before = _tree_cpu(postmaster) if postmaster else 0.0
    if _client() == "wrk":
        result = _load_wrk(port, key, method, path, body, clients)
    else:
        result = _load_python(port, key, method, path, body, clients)
    if server_pid:
        cpu = _tree_cpu(server_pid) - cpu_before
        result["web_cpu_ms_per_request"] = round(cpu * 1000 / max(1, result["ok"]), 2)
    if postmaster:
        result["pg_cpu_ms_per_request"] = round((_tree_cpu(postmaster) - pg_before) * 1000 / max(1, result["ok"]), 2)
    result["loadavg"] = [round(value, 2) for value in os.getloadavg()]
    return result


def _load_wrk(port: int, key: str, method: str, path: str, body: bytes | None, clients: int) -> dict:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body or b"")
        body_file.flush()
        completed = subprocess.run(
            ["wrk", "-t", str(min(2, clients)), "-c", str(clients), "-d", f"{DURATION:g}s", "--timeout", "30s",
             "-s", str(ROOT / "bench" / "orders.lua"), f"http://127.0.0.1:{port}{path}",
             "--", method, path, key, uuid.uuid4().hex],
            env=dict(os.environ, BENCH_ORDERS_BODY=body_file.name), capture_output=True, text=True, check=True,
        )  # fmt: skip
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    errors = summary["non_2xx_3xx"] + summary["socket_errors"]
    ok = summary["requests"] - summary["non_2xx_3xx"]
    return {
        "client": "wrk",
        "rps": ok / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "ok": ok,
        "errors": errors,
    }


def _load_python(port: int, key: str, method: str, path: str, body: bytes | None, clients: int) -> dict:
    processes = min(PROCESSES, clients)
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    deadline = time.time() + DURATION
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        chunks = pool.map(_client_loop, [(port, key, method, path, body, n, deadline) for n in per_process])
    elapsed = time.perf_counter() - started
    samples = [sample for chunk in chunks for sample in chunk]
    ok = [latency for latency, status in samples if 200 <= status < 300]
    errors = len(samples) - len(ok)
    return {
        "client": "python",
        "rps": len(ok) / elapsed,
        "p50_ms": percentile(ok, 50) * 1000 if ok else None,
        "p99_ms": percentile(ok, 99) * 1000 if ok else None,
        "ok": len(ok),
        "errors": errors,
        "statuses": sorted({status for _, status in samples}),
    }


def _pgbench(ctx: Context) -> float | None:
    """TPC-B tps with 16 clients on a scratch database of the same server."""
    pgbench = shutil.which("pgbench")
    from rewards_portal.embedded import EmbeddedServerError, postgres_bin_dir

    try:
        bundled = postgres_bin_dir() / "pgbench"
        if bundled.exists():
            pgbench = str(bundled)
    except EmbeddedServerError:  # a DATABASE_URL run without the embedded packages: pgbench from PATH
        pass
    if not pgbench:
        return None
    from rewards_portal.settings.base import database_config

    db = database_config(ctx.database_url)
    env = dict(os.environ, PGHOST=db["HOST"] or "127.0.0.1", PGUSER=db["USER"] or "postgres")
    if db.get("PORT"):
        env["PGPORT"] = str(db["PORT"])
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    psql = str(Path(pgbench).parent / "psql")
    database = "bench_pgbench"
    subprocess.run([psql, "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"], env=env, check=True)
    subprocess.run([psql, "-d", "postgres", "-qc", f"CREATE DATABASE {database}"], env=env, check=True)
    try:
        subprocess.run([pgbench, "-i", "-q", "-s", "10", database], env=env, check=True, capture_output=True)
        result = subprocess.run(
            [pgbench, "-c", "16", "-j", "2", "-T", str(int(DURATION)), "-n", database],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        subprocess.run([psql, "-d", "postgres", "-qc", f"DROP DATABASE {database}"], env=env, capture_output=True)
    for line in result.stdout.splitlines():
        if line.startswith("tps ="):
            return float(line.split()[2])
    return None


def _setup() -> tuple[str, str]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create, tenant_create
    from testsupport.catalog import make_shop

    tenant = tenant_create(slug=f"bench-orders-{uuid.uuid4().hex[:6]}", name="Bench Orders")
    _, key = api_key_create(tenant=tenant)
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
    connection.set_schema_to_public()
    body = {
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
    return key, json.dumps(body)


def _start_server(ctx: Context, port: int, workers: int = 3, extra_env: dict | None = None) -> subprocess.Popen:
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.production",
        DATABASE_URL=ctx.database_url,
        REDIS_URL=ctx.redis_url,
        SECRET_KEY="bench-" + "x" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),  # the bench process's keys: same ciphertexts
        SECURE_SSL_REDIRECT="false",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        API_RATE_LIMIT_PER_MINUTE="10000000",
        DB_CONN_MAX_AGE="600",
    )
    env.update(extra_env or {})
    return gunicorn_start("rewards_portal.wsgi", port, env, workers=workers, ready_path="/healthz")


def gunicorn_start(app: str, port: int, env: dict, *, workers: int = 3, ready_path: str = "/") -> subprocess.Popen:
    """gunicorn serving `app` as gunicorn.conf.py configures it (plus BENCH_GUNICORN_ARGS), once `ready_path`
    answers 200."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning", *shlex.split(os.environ.get("BENCH_GUNICORN_ARGS", ""))],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", ready_path)
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"gunicorn did not start: {server.stderr.read().decode()[-2000:]}")


def run(ctx: Context) -> list[Row]:
    key, body = _setup()
    port = _free_port()
    server = _start_server(ctx, port)
    rows: list[Row] = []
    try:
        _load(port, key, "GET", "/api/v1/products", None, 4, server.pid)  # warm up every gunicorn worker
        results = {}
        for clients in CLIENT_LEVELS:
            results[("orders", clients)] = _load(
                port, key, "POST", "/api/v1/orders", body.encode(), clients, server.pid
            )
            results[("products", clients)] = _load(port, key, "GET", "/api/v1/products", None, clients, server.pid)
        memory = peak_memory([server.pid])  # before the workers exit: their high-water marks
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    tps = _pgbench(ctx)
    for clients in CLIENT_LEVELS:
        orders = results[("orders", clients)]
        ratio = f"{orders['rps'] / tps:.0%} of pgbench TPC-B {tps:.0f} tps" if tps else "pgbench not found"
        rows.append(
            Row(
                f"POST /orders, {clients} client(s)",
                round(orders["rps"], 1),
                "orders/s",
                ratio,
                f"p50 {orders['p50_ms']:.1f} ms, p99 {orders['p99_ms']:.1f} ms, {orders['errors']} errors; "
                f"web CPU {orders['web_cpu_ms_per_request']} ms/order, "
                f"PostgreSQL {orders.get('pg_cpu_ms_per_request', '?')}; "
                f"client {orders['client']}; "
                f"load {orders['loadavg'][0]}",
                extra=orders,
            )
        )
    for clients in CLIENT_LEVELS:
        products = results[("products", clients)]
        rows.append(
            Row(
                f"GET /products, {clients} client(s)",
                round(products["p99_ms"], 1),
                "ms p99",
                f"p50 {products['p50_ms']:.1f} ms",
                f"{products['rps']:.0f} req/s",
                extra=products,
            )
        )
    rows.append(Row("pgbench TPC-B, 16 clients", round(tps, 1) if tps else None, "tps", "ceiling", "same server"))
    rows.append(memory_row("web (gunicorn)", memory, "the orders and products runs (gthread, 3 workers x 6 threads)"))
    return rows
