"""Scale-out through PgBouncer: 2 gunicorn processes on two ports + 2 Celery workers on separate queues.

The topology of docs/scaling.md on one machine, run twice in the same invocation — once with every process
connecting to PostgreSQL directly, once through a private PgBouncer in transaction pooling mode
(`DB_TRANSACTION_POOLING=true`, `DATABASE_URL` pointing at the pooler) — so the pooler's cost and what it saves
are side by side:

- web: two gunicorn servers (1 gthread worker x 6 threads each) on two ports; the load generator spreads its
  clients over both, as a load balancer would. Rows as bench/orders.py: `POST /api/v1/orders` at 1 and 16
  clients, p50/p99 (BENCH_SCALEOUT_SECONDS per level, default 8);
- workers: one process consuming `delivery` (fulfilment drains, email), one consuming `default,webhooks,bulk`
  (the big tenant has a webhook endpoint subscribed to `reward.delivered`, so every delivered reward is also a
  webhook delivery through the second process). Rows as bench/delivery.py's backlog phase: a backlog of
  BENCH_SCALEOUT_REWARDS rewards (default 1,000) committed while the delivery worker does not consume, timed
  from its resuming to the last email received; worker CPU per reward (both processes); webhooks received;
- the peak number of PostgreSQL backends the direct processes hold open (sampled every 0.25 s; PgBouncer's own
  server connections told apart by `SHOW SERVERS`), against PgBouncer's `SHOW POOLS` in the pooled round (peak
  server connections in use and open, client connections, clients waiting) and `SHOW STATS` over the run
  (transactions, average wait for a server connection). Orders are loaded with both server pairs up, the two
  modes alternating (BENCH_SCALEOUT_REPEATS loads of each per level, default 2), so the machine's drifting load
  falls on both alike.

PgBouncer is Debian's package (`apt-get install pgbouncer`), started on a free 127.0.0.1 port with its own
configuration (`default_pool_size` BENCH_PGBOUNCER_POOL_SIZE, default 10) in front of the bench database; the
module is skipped with a message when it is not installed. Checked at the end of each round: every reward
delivered and emailed once, every `reward.delivered` webhook received, ledger invariants in every tenant.

    make bench ARGS="scaleout_pgbouncer"
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field

from .common import Context, Row, Workers, percentile

REWARDS = int(os.environ.get("BENCH_SCALEOUT_REWARDS", "1000"))
SECONDS = float(os.environ.get("BENCH_SCALEOUT_SECONDS", "8"))
POOL_SIZE = int(os.environ.get("BENCH_PGBOUNCER_POOL_SIZE", "10"))
REPEATS = int(os.environ.get("BENCH_SCALEOUT_REPEATS", "2"))  # loads per level and mode, alternating
CLIENT_LEVELS = (1, 16)
THREADS = 6  # gunicorn threads per process (as bench/orders.py)
CONCURRENCY = 4  # Celery threads per worker process (as bench/delivery.py)
QUEUES = ["delivery", "default,webhooks,bulk"]
ROUNDS = ("direct", "pgbouncer")


@dataclass
class Peaks:
    """Maxima of sampled gauges while a phase runs."""

    values: dict[str, float] = field(default_factory=dict)

    def note(self, reading: dict[str, float]) -> None:
        for name, value in reading.items():
            self.values[name] = max(self.values.get(name, 0), value)


class Sampler:
    """A thread reading the bench database's backend count (and PgBouncer's pools) every 0.25 s."""

    def __init__(
        self, database_url: str, exclude_pids: set[int], bouncer=None, dbname: str = "", pools: bool = True
    ) -> None:
        self.database_url = database_url
        self.exclude = set(exclude_pids)
        self.bouncer = bouncer  # its server connections are told apart from direct ones (SHOW SERVERS remote_pid)
        self.pools = pools  # read its pools too
        self.dbname = dbname
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            self.exclude.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            while not self._stop.is_set():
                pids = [
                    row[0]
                    for row in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend'"
                    ).fetchall()
                ]
                pooled = set()
                if self.bouncer is not None:
                    pooled = {int(row["remote_pid"]) for row in _admin(self.bouncer, "SERVERS")}
                direct = [pid for pid in pids if pid not in self.exclude and pid not in pooled]
                reading: dict[str, float] = {"backends": len(direct)}
                if self.bouncer is not None and self.pools:
                    pool = pool_row(self.bouncer, self.dbname)
                    reading |= {
                        "cl_active": int(pool.get("cl_active", 0)),
                        "cl_waiting": int(pool.get("cl_waiting", 0)),
                        "sv_total": int(sum(pool.get(k, 0) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested"))),
                        "sv_active": int(pool.get("sv_active", 0)),
                    }
                self.peaks.note(reading)
                self._stop.wait(0.25)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _admin(bouncer, what: str) -> list[dict]:
    """`SHOW <what>` on PgBouncer's admin console, as dicts (simple protocol, no transaction)."""
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={bouncer.port} dbname=pgbouncer user={bouncer.user}", autocommit=True
    ) as conn:
        conn.prepare_threshold = None
        cursor = conn.execute(f"SHOW {what}", prepare=False)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pool_row(bouncer, dbname: str) -> dict:
    return next((row for row in _admin(bouncer, "POOLS") if row["database"] == dbname), {})


def stats_row(bouncer, dbname: str) -> dict:
    return next((row for row in _admin(bouncer, "STATS") if row["database"] == dbname), {})


def _load(ports: list[int], key: str, body: bytes | None, clients: int, path: str, method: str) -> dict:
    """bench/orders.py's load generator, its client processes spread over the ports (a load balancer's job)."""
    from .orders import PROCESSES, _client_loop

    processes = min(PROCESSES, clients)
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    deadline = time.time() + SECONDS
    started = time.perf_counter()
    jobs = [(ports[i % len(ports)], key, method, path, body, n, deadline) for i, n in enumerate(per_process)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        chunks = pool.map(_client_loop, jobs)
    elapsed = time.perf_counter() - started
    samples = [sample for chunk in chunks for sample in chunk]
    ok = [latency for latency, status in samples if 200 <= status < 300]
    return {
        "rps": len(ok) / elapsed,
        "p50_ms": percentile(ok, 50) * 1000 if ok else None,
        "p99_ms": percentile(ok, 99) * 1000 if ok else None,
        "ok": len(ok),
        "errors": len(samples) - len(ok),
        "statuses": sorted({status for _, status in samples}),
    }


def _merge(samples: list[dict]) -> dict:
    """Several loads of one level and mode: mean rate and percentiles, errors added up, peaks the highest."""
    peaks: dict[str, float] = {}
    for sample in samples:
        for name, value in sample["peaks"].items():
            peaks[name] = max(peaks.get(name, 0), value)
    return {
        "rps": sum(x["rps"] for x in samples) / len(samples),
        "p50_ms": sum(x["p50_ms"] or 0 for x in samples) / len(samples),
        "p99_ms": sum(x["p99_ms"] or 0 for x in samples) / len(samples),
        "errors": sum(x["errors"] for x in samples),
        "web_cpu_ms": sum(x["web_cpu_ms"] for x in samples) / len(samples),
        "ok": sum(x["ok"] for x in samples),
        "peaks": peaks,
        "runs": [{k: v for k, v in x.items() if k != "peaks"} for x in samples],
    }


def _orders(ctx: Context, envs: dict[str, dict], key: str, body: str, exclude: set[int], bouncer, dbname: str) -> dict:
    """Both pairs of gunicorn servers up at once (direct and pooled); each level loaded REPEATS times per mode,
    the modes alternating (ABBA), so the machine's drifting load falls on both alike."""
    from . import orders

    servers = []
    ports: dict[str, list[int]] = {}
    pids: dict[str, list[int]] = {}
    try:
        for mode, extra_env in envs.items():
            ports[mode] = [orders._free_port(), orders._free_port()]
            for port in ports[mode]:
                servers.append(orders._start_server(ctx, port, workers=1, extra_env=extra_env))
            pids[mode] = [server.pid for server in servers[-2:]]
            _load(ports[mode], key, None, 4, "/api/v1/products", "GET")  # warm up both servers' threads
        samples: dict[str, dict[int, list[dict]]] = {mode: {c: [] for c in CLIENT_LEVELS} for mode in envs}
        for clients in CLIENT_LEVELS:
            for repeat in range(REPEATS):
                for mode in list(envs)[:: 1 if repeat % 2 == 0 else -1]:
                    pooled = mode == "pgbouncer"
                    cpu_before = _tree_cpu(pids[mode])
                    with Sampler(ctx.database_url, exclude, bouncer, dbname, pools=pooled) as sampler:
                        result = _load(ports[mode], key, body.encode(), clients, "/api/v1/orders", "POST")
                    result["peaks"] = sampler.peaks.values
                    result["web_cpu_ms"] = (_tree_cpu(pids[mode]) - cpu_before) / max(result["ok"], 1) * 1000
                    samples[mode][clients].append(result)
        return {mode: {c: _merge(samples[mode][c]) for c in CLIENT_LEVELS} for mode in envs}
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)


class _DeliveryView:
    """What bench/delivery.py's backlog phase needs of the workers: the names it pauses and resumes (the delivery
    process only: `add_consumer` on the other would make it consume `delivery` too) and the CPU of all of them."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.names = workers.names[:1]

    def cpu_seconds(self) -> float | None:
        return self.workers.cpu_seconds()


def _delivery(ctx: Context, extra_env: dict, exclude: set[int], bouncer, dbname: str, pooled: bool) -> dict:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from webhooks.endpoints import webhook_endpoint_create

    from .delivery import SmtpSink, _backlog, _check, _place, _wait
    from .delivery import _setup as delivery_setup
    from .webhooks import Receiver

    big, small, shop = delivery_setup()
    receiver = Receiver()
    with tenant_context(big):
        webhook_endpoint_create(url=receiver.url, events=["reward.delivered"], description="bench receiver")
    connection.set_schema_to_public()
    sink = SmtpSink()
    workers = Workers(
        ctx,
        name="scaleout-pgbouncer",
        count=2,
        concurrency=CONCURRENCY,
        queues=QUEUES,
        env={
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_USE_TLS": "false",
            "OUTBOUND_ALLOW_PRIVATE": "true",
            **extra_env,
        },
    )
    try:
        workers.start()
        warm = [f"warm{i}@scaleout.example" for i in range(2 * CONCURRENCY)]
        warm_order, _ = _place(big, shop.coffee_usd, warm)
        if not _wait(sink, warm, time.monotonic() + 60):
            raise RuntimeError(f"warm-up rewards were not delivered; worker log: {workers.log_tail()}")
        bouncer_cpu_before = _process_cpu(bouncer.process.pid) if pooled else None
        with Sampler(ctx.database_url, exclude, bouncer, dbname, pools=pooled) as sampler:
            result = _backlog(_DeliveryView(workers), sink, big, small, shop.coffee_usd, REWARDS)
            expected_hooks = len(warm) + REWARDS
            deadline = time.monotonic() + 120
            while len(receiver.first_arrivals()) < expected_hooks and time.monotonic() < deadline:
                time.sleep(0.05)
        result["bouncer_cpu"] = (
            _process_cpu(bouncer.process.pid) - bouncer_cpu_before if bouncer_cpu_before is not None else None
        )
        result["peaks"] = sampler.peaks.values
        result["webhooks"] = len(receiver.first_arrivals())
        result["webhooks_expected"] = expected_hooks
        result["worker_log"] = workers.log_tail()
    finally:
        workers.stop()
        sink.stop()
        receiver.stop()
    big_orders = [warm_order, *result["placed"].order_ids]
    statuses, order_statuses, violations = _check(big, big_orders)
    small_statuses, _, small_violations = _check(small, result["fair"].order_ids)
    duplicates = sum(len(sink.arrivals[a]) - 1 for a in result["addresses"] if a in sink.arrivals)
    problems = []
    if not result["complete"]:
        problems.append("not every email arrived")
    if statuses != {"delivered": len(warm) + REWARDS} or small_statuses != {"delivered": 1}:
        problems.append(f"reward statuses {statuses} / {small_statuses}")
    if violations or small_violations:
        problems.append(f"ledger: {'; '.join((violations + small_violations)[:3])}")
    if duplicates:
        problems.append(f"{duplicates} duplicate emails")
    if result["webhooks"] < expected_hooks:
        problems.append(f"{result['webhooks']} of {expected_hooks} webhooks received")
    if order_statuses != {"completed": len(big_orders)}:
        problems.append(f"order statuses {order_statuses}")
    result["verdict"] = "FAILED: " + ", ".join(problems) if problems else "all delivered, 1 email each, ledger balanced"
    return result


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes and their children (gunicorn's master and its worker)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _process_cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _orders_ledger(tenant) -> list[str]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.selectors import ledger_invariant_violations

    with tenant_context(tenant):
        violations = ledger_invariant_violations()
    connection.set_schema_to_public()
    return violations


def run(ctx: Context) -> list[Row]:
    from django.db import connection

    from rewards_portal.settings.base import database_config
    from tenants.models import Tenant
    from testsupport import pgbouncer

    if not pgbouncer.binary():
        return [Row("scale-out through PgBouncer", None, "", "",
                    "skipped: pgbouncer is not installed (apt-get install pgbouncer)")]  # fmt: skip
    from . import orders

    load_before = os.getloadavg()
    db = database_config(ctx.database_url)
    bouncer = pgbouncer.PgBouncer(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], pool_size=POOL_SIZE
    )
    results: dict[str, dict] = {}
    try:
        before = set(Tenant.objects.values_list("pk", flat=True))
        key, body = orders._setup()
        orders_tenant = Tenant.objects.exclude(pk__in=before).get(slug__startswith="bench-orders-", is_sandbox=False)
        connection.ensure_connection()
        exclude = {connection.connection.info.backend_pid}
        envs = {
            "direct": {},
            "pgbouncer": {"DATABASE_URL": bouncer.url(db["NAME"]), "DB_TRANSACTION_POOLING": "true"},
        }
        stats_before = stats_row(bouncer, db["NAME"])
        orders_results = _orders(ctx, envs, key, body, exclude, bouncer, db["NAME"])
        for mode in ROUNDS:
            if ctx.remaining() < 60:
                results[mode] = {"skipped": True}
                continue
            pooled = mode == "pgbouncer"
            round_load = os.getloadavg()[0]
            results[mode] = {
                "orders": orders_results[mode],
                "delivery": _delivery(ctx, envs[mode], exclude, bouncer, db["NAME"], pooled),
                "load": (round_load, os.getloadavg()[0]),
            }
        stats_after = stats_row(bouncer, db["NAME"])
        results["pgbouncer"]["stats"] = {  # PgBouncer answers numerics (Decimal)
            k: int(stats_after.get(k, 0) - stats_before.get(k, 0))
            for k in ("total_xact_count", "total_query_count", "total_wait_time", "total_xact_time")
        }
        pgbouncer_version = pgbouncer.version()
    finally:
        bouncer.stop()
    orders_violations = _orders_ledger(orders_tenant)
    load_after = os.getloadavg()
    return _rows(results, pgbouncer_version, orders_violations, load_before, load_after)


def _rows(results: dict, version: str, orders_violations: list[str], load_before, load_after) -> list[Row]:
    rows: list[Row] = []
    direct, pooled = results.get("direct", {}), results.get("pgbouncer", {})
    if pooled.get("skipped") or direct.get("skipped"):
        return [Row("scale-out through PgBouncer", None, "", "", "skipped: out of --budget")]
    for clients in CLIENT_LEVELS:
        p, d = pooled["orders"][clients], direct["orders"][clients]
        peaks = p["peaks"]
        rows.append(
            Row(
                f"scale-out via PgBouncer: POST /orders, {clients} client(s), "
                f"2 gunicorn x 1 worker x {THREADS} threads",
                round(p["rps"], 1),
                "orders/s",
                f"direct in the same run: {d['rps']:.1f} orders/s, p50 {d['p50_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms, "
                f"{d['web_cpu_ms']:.1f} ms gunicorn CPU per order, "
                f"{d['peaks'].get('backends', 0):.0f} PostgreSQL backends open",
                f"p50 {p['p50_ms']:.0f} ms, p99 {p['p99_ms']:.0f} ms, {p['web_cpu_ms']:.1f} ms gunicorn CPU per order, "
                f"{p['errors']} errors; peak "
                f"{peaks.get('sv_active', 0):.0f} PostgreSQL server connections in use ({peaks.get('sv_total', 0):.0f} "
                f"open) for {peaks.get('cl_active', 0):.0f} client connections, "
                f"{peaks.get('cl_waiting', 0):.0f} waiting; mean of {REPEATS} loads of {SECONDS:g} s per mode, "
                "alternating",
                {"pgbouncer": p, "direct": d},
            )
        )
    p, d = pooled["delivery"], direct["delivery"]

    def cpu(result: dict) -> float | None:
        return result["worker_cpu"] / result["count"] * 1000 if result["worker_cpu"] is not None else None

    pc, dc = cpu(p), cpu(d)
    peaks = p["peaks"]
    rows.append(
        Row(
            f"scale-out via PgBouncer: backlog of {REWARDS:,} rewards → emails received, workers -Q "
            f"{' / -Q '.join(QUEUES)}",
            round(p["rate"], 1),
            "rewards/s",
            f"direct in the same run: {d['rate']:.1f} rewards/s, "
            + (f"{dc:.1f} ms worker CPU per reward, " if dc is not None else "")
            + f"{d['peaks'].get('backends', 0):.0f} PostgreSQL backends open; {d['verdict']}",
            (f"{pc:.1f} ms worker CPU per reward; " if pc is not None else "")
            + (f"PgBouncer CPU {p['bouncer_cpu'] / p['count'] * 1000:.2f} ms per reward; " if p["bouncer_cpu"] else "")
            + f"{p['webhooks']:,} of {p['webhooks_expected']:,} reward.delivered webhooks received; peak "
            f"{peaks.get('sv_active', 0):.0f} PostgreSQL server connections in use ({peaks.get('sv_total', 0):.0f} "
            f"open) for {peaks.get('cl_active', 0):.0f} client connections; "
            "another tenant's order mid-backlog: "
            f"{(p['fair_latency'] or 0) * 1000:.0f} ms (direct {(d['fair_latency'] or 0) * 1000:.0f} ms); "
            f"{p['verdict']}",
            {k: v for k, v in p.items() if k not in ("placed", "fair", "addresses", "worker_log")},
        )
    )
    stats = pooled.get("stats", {})
    xacts = stats.get("total_xact_count", 0)
    rows.append(
        Row(
            f"{version}: transaction pooling, default_pool_size {POOL_SIZE}",
            xacts,
            "transactions",
            f"{stats.get('total_query_count', 0):,} queries; average wait for a server connection "
            f"{stats.get('total_wait_time', 0) / max(xacts, 1):.0f} µs per transaction; average transaction "
            f"{stats.get('total_xact_time', 0) / max(xacts, 1) / 1000:.2f} ms",
            "orders tenant ledger: " + ("balanced" if not orders_violations else "; ".join(orders_violations[:3])),
            stats,
        )
    )
    for row in rows:
        row.extra = json.loads(json.dumps(row.extra, default=float))  # whatever a driver answered, as JSON
        row.notes += (
            f"; load {load_before[0]:.1f} → {load_after[0]:.1f} "
            f"(delivery: direct {direct['load'][0]:.1f} → {direct['load'][1]:.1f}, pooled "
            f"{pooled['load'][0]:.1f} → {pooled['load'][1]:.1f})"
        )
    return rows
