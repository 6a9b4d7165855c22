"""Where one `POST /api/v1/orders` spends its CPU and its statements (bench/PROFILE-orders.md).

    .venv/bin/python bench/profile_orders.py              # in-process: statements, CPU ms/order, cProfile split
    .venv/bin/python bench/profile_orders.py --pyspy      # also gunicorn under 16-client load, py-spy on the workers

Same throwaway database as `make bench` (a claimed slot, dropped at the end). In-process numbers go through
the whole Django stack (every middleware, DRF, the service, rendering, audit, the Celery publish) with the
Django test client instead of gunicorn; CPU is this process's CPU time (`time.process_time`), so they do
not depend on what else the machine runs. `--pyspy` also samples PostgreSQL's `pg_stat_activity` wait events
during the 16-client run (how often a backend waits on the tenant's cash account row lock).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# As bench/orders.py's server: DEBUG off, WARNING logs (base.py reads these at import time).
os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # LOG_LEVEL=INFO: with the request log line, as production logs

# Where the CPU goes: cumulative CPU per order of these entry points (nested ones are part of their parent).
ENTRY_POINTS = [
    ("whole WSGI request (test client: handler + every middleware)", "django/test/client.py", "request"),
    ("  RequestLogMiddleware (request id, JSON log line)", "core/middleware.py", "__call__"),
    ("  TenantRoutingMiddleware._route_api (key from cache + hash)", "tenants/middleware.py", "_route_api"),
    ("    auth-failure peek (Redis GET)", "tenants/middleware.py", "auth_failure_throttled"),
    ("    credential_authenticate (key cache stamp GET, sha256)", "tenants/services.py", "credential_authenticate"),
    ("  DRF APIView.dispatch", "rest_framework/views.py", "dispatch"),
    ("    APIView.initial (auth, scopes, rate limit)", "rest_framework/views.py", "initial"),
    ("      rate limit (Redis INCR+EXPIRE pipeline)", "api/throttling.py", "allow_request"),
    ("    OrderListCreateApi.post", "orders/apis.py", "post"),
    ("      serializer is_valid", "rest_framework/serializers.py", "is_valid"),
    ("      request_hash", "orders/idempotency.py", "request_hash"),
    ("      order_create", "orders/create.py", "order_create"),
    ("        idempotency lock + replay check", "orders/idempotency.py", "idempotency_begin"),
    ("        plan_rewards (catalogue, rules, FX, balance)", "orders/planning.py", "plan_rewards"),
    ("        _new_rewards (reward, event, shipment rows built)", "orders/create.py", "_new_rewards"),
    ("        insert_together (3 statements: order, event, hold)", "core/bulk.py", "insert_together"),
    ("        render: order_get + order_render", "orders/apis.py", "<lambda>"),
    ("          order_render", "orders/selectors.py", "order_render"),
    ("        event_emit", "webhooks/events.py", "event_emit"),
    ("        _hold_funds (hold + ledger transaction, posting)", "orders/create.py", "_hold_funds"),
    ("          funds_hold", "funds/services.py", "funds_hold"),
    ("          on_available_decreased (balance.low check)", "funds/events.py", "on_available_decreased"),
    ("        commit + on_commit (rewards_dispatch: Celery publish)", "django/db/transaction.py", "__exit__"),
    ("          rewards_dispatch (Celery publish by task name)", "orders/handoff.py", "rewards_dispatch"),
    ("    finalize_response (+ audit INSERT)", "api/views.py", "finalize_response"),
    ("      api_write_audit", "api/write_audit.py", "api_write_audit"),
    ("    JSON rendering", "rest_framework/renderers.py", "render"),
    ("  SQL: psycopg execute (all statements, client side)", "psycopg/cursor.py", "execute"),
]


def entry_point_split(stats: pstats.Stats, n: int) -> list[tuple[str, float]]:
    """Cumulative seconds per order of each entry point (the largest matching function, if several)."""
    rows = []
    for label, filename, funcname in ENTRY_POINTS:
        best = 0.0
        for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items():
            if file.endswith(filename) and name == funcname:
                best = max(best, cumulative)
        rows.append((label, best / n))
    return rows


# py-spy stacks: the deepest frame (leaf upwards) naming one of these decides where a sample goes.
PYSPY_COMPONENTS = [
    ("waiting on PostgreSQL (psycopg wait)", ("(psycopg/waiting.py", "(psycopg/connection.py:4")),
    ("waiting on Redis (socket)", ("(redis/connection.py", "(redis/_parsers")),
    ("Celery/kombu publish (CPU)", ("(celery/", "(kombu/")),
    ("SQL compile + psycopg (CPU)", ("(django/db/models/sql/", "(psycopg/", "(django/db/backends/")),
    ("ORM model/queryset (CPU)", ("(django/db/models/",)),
    ("webhooks event_emit", ("(webhooks/",)),
    ("funds ledger", ("(funds/",)),
    ("catalog/programs reads", ("(catalog/", "(programs/")),
    (
        "orders service + render",
        tuple(
            f"(orders/{name}.py"
            for name in ("create", "planning", "idempotency", "claim_tokens", "handoff", "selectors")
        ),
    ),
    ("DRF serializers", ("(rest_framework/serializers.py", "(rest_framework/fields.py")),
    ("DRF view/parse/render", ("(rest_framework/",)),
    ("API key auth + routing", ("(tenants/",)),
    ("rate limit", ("(core/ratelimit.py",)),
    ("audit", ("(audit/",)),
    ("logging", ("(logging/", "(core/logging.py")),
    ("Django handler/middleware", ("(django/",)),
    ("gunicorn / WSGI / idle threads", ("(gunicorn/", "(threading.py", "(selectors.py", "(concurrent/")),
]


def pyspy_split(path: Path) -> list[tuple[str, float]]:
    """Share of py-spy samples per component (raw format: `frame;frame;... count`, leaf last)."""
    shares: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        label = "other"
        for frame in reversed(frames):
            found = next((name for name, needles in PYSPY_COMPONENTS if any(n in frame for n in needles)), None)
            if found:
                label = found
                break
        shares[label] += int(count)
    total = sum(shares.values()) or 1
    return [(name, count / total) for name, count in shares.most_common()]


def setup_database() -> tuple[str, object, str, str]:
    from bench.run import BENCH_DATABASE, database_url_for, recreate_database
    from rewards_portal import embedded
    from rewards_portal.settings.base import redis_url_with_db
    from scripts.run_tests import claim_slot

    stores = embedded.environment_or_exit()
    slot, slot_client = claim_slot(stores["REDIS_URL"])
    database = BENCH_DATABASE.format(slot=slot)
    database_url = database_url_for(stores["DATABASE_URL"], database)
    redis_url = redis_url_with_db(stores["REDIS_URL"], slot)
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    recreate_database(stores["DATABASE_URL"], database)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(redis_url).flushdb()
    call_command("platform_migrate", verbosity=0)
    return stores["DATABASE_URL"], (slot_client, slot), database_url, redis_url


def in_process(n: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.orders import _setup

    key, body = _setup()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="127.0.0.1")

    def one() -> None:
        response = client.post(
            "/api/v1/orders", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
        )
        assert response.status_code == 201, response.content

    for _ in range(20):
        one()
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as captured:
        one()
    statements = [q["sql"] for q in captured.captured_queries]
    started = time.process_time()
    for _ in range(n):
        one()
    cpu_ms = (time.process_time() - started) * 1000 / n
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waits on PostgreSQL/Redis excluded
    profiler.enable()
    for _ in range(n):
        one()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.dump_stats(str(ROOT / "var" / "bench" / "orders.pstats"))
    total = stats.total_tt
    stats.sort_stats("tottime")
    return {
        "cpu_ms_per_order": round(cpu_ms, 2),
        "statements": len(statements),
        "sql": statements,
        "profiled_ms_per_order": round(total * 1000 / n, 2),
        "split": [(name, round(seconds * 1000, 2)) for name, seconds in entry_point_split(stats, n)],
        "key": key,
        "body": body,
    }


def with_pyspy(database_url: str, redis_url: str, key: str, body: str, seconds: int) -> dict:
    import psycopg

    from bench.common import Context
    from bench.orders import _free_port, _load, _start_server

    ctx = Context(database_url=database_url, redis_url=redis_url, budget_seconds=600)
    port = _free_port()
    server = _start_server(ctx, port)
    out = ROOT / "var" / "bench"
    result: dict = {}
    try:
        _load(port, key, "GET", "/api/v1/products", None, 4)
        waits: Counter = Counter()
        stop = threading.Event()

        def sample() -> None:
            with psycopg.connect(database_url, autocommit=True) as conn:
                while not stop.is_set():
                    rows = conn.execute(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, state), left(query, 60) "
                        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND state <> 'idle'"
                    ).fetchall()
                    waits["samples"] += 1
                    for wait, query in rows:
                        waits[f"{wait} | {query}"] += 1
                    time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid), "--subprocesses",
             "--rate", "100", "--duration", str(seconds), "--format", "raw",
             "--output", str(out / "orders-pyspy.txt"), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        cpu_before = _tree_cpu(server.pid)
        load = _load(port, key, "POST", "/api/v1/orders", body.encode(), 16)
        cpu_after = _tree_cpu(server.pid)
        spy.wait(timeout=seconds + 60)
        stop.set()
        sampler.join()
        result = {
            "load": load,
            "server_cpu_ms_per_order": round((cpu_after - cpu_before) * 1000 / max(1, load["ok"]), 2),
            "loadavg": os.getloadavg(),
            "pg_waits": waits.most_common(15),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


def _tree_cpu(pid: int) -> float:
    """user+system CPU seconds of gunicorn's master and workers."""
    import psutil

    parent = psutil.Process(pid)
    total = 0.0
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="orders per in-process measurement (default 300)")
    parser.add_argument("--pyspy", action="store_true", help="also profile gunicorn workers under 16 clients")
    parser.add_argument("--sql", action="store_true", help="print every statement of one order")
    args = parser.parse_args()
    server_url, (slot_client, slot), database_url, redis_url = setup_database()
    from bench.run import BENCH_DATABASE, recreate_database

    try:
        (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
        report = in_process(args.n)
        print(f"load average {os.getloadavg()}")
        print(f"one order: {report['statements']} SQL statements; {report['cpu_ms_per_order']} ms CPU in-process")
        if args.sql:
            for statement in report["sql"]:
                print("  ", statement[:160])
        print(f"CPU under cProfile (inflated by its overhead): {report['profiled_ms_per_order']} ms per order")
        for name, ms in report["split"]:
            print(f"  {ms:6.2f} ms  {name}")
        if args.pyspy:
            os.environ["BENCH_ORDERS_SECONDS"] = os.environ.get("BENCH_ORDERS_SECONDS", "10")
            spy = with_pyspy(database_url, redis_url, report["key"], report["body"], 12)
            print(json.dumps(spy, indent=1, default=str))
            print("py-spy samples of the gunicorn workers during the 16-client run (on-CPU samples only):")
            for name, share in pyspy_split(ROOT / "var" / "bench" / "orders-pyspy.txt"):
                print(f"  {share:6.1%}  {name}")
    finally:
        from django.db import connections

        connections.close_all()
        slot_client.delete(f"rp:test-slot:{slot}")
        recreate_database(server_url, BENCH_DATABASE.format(slot=slot), create=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
