"""How much of `POST /api/v1/orders` is the framework: the real order path against its floor, the same work with no
Django, DRF or ORM (bench/order_floor_app.py), both under gunicorn as gunicorn.conf.py configures it, taking turns.

    .venv/bin/python bench/order_floor.py [--seconds 10] [--rounds 2]

One order goes through the whole stack in-process; its statements with their parameters and its response are
captured (an execute wrapper). The floor server replays them per request with fresh ids — the same statements on
the same schema, prepared the same way, the same commit with its hold posting, the same three Redis round trips,
JSON read and written — so its CPU per order is what the order's database work costs from Python at the least.
The real server and the floor take turns, at 1 and 16 clients (wrk, as `make bench`), on the same database; a
table of orders/s, p50/p99 and the web processes' and PostgreSQL's CPU per order is printed. Not part of
`make bench`: it answers one question (what the order path's framework share is), see bench/PROFILE-orders.md.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import pickle
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def capture(path: Path) -> tuple[str, str]:
    """Place orders in-process until warm, capture the next one; write it to `path`. Returns (key, body)."""
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import connection
    from django.test import Client
    from psycopg.types.json import Jsonb

    from bench.orders import _setup

    key, body = _setup()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="127.0.0.1")

    def order(idempotency_key: str) -> bytes:
        response = client.post(
            "/api/v1/orders", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key
        )
        assert response.status_code == 201, response.content
        return response.content

    for _ in range(10):
        order(uuid.uuid4().hex)
    statements: list[tuple[str, list]] = []
    schemas: list[str] = []

    def plain(value: object) -> object:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, Jsonb):  # as Django's JSONField sends it, without Django's types inside
            return ("__jsonb__", json.loads(json.dumps(value.obj, cls=DjangoJSONEncoder)))
        return value

    def wrapper(execute, sql, params, many, context):  # Django's execute_wrapper signature
        statements.append((sql, [plain(param) for param in params or ()]))
        schemas.append(connection.schema_name)
        return execute(sql, params, many, context)

    idempotency_key = uuid.uuid4().hex
    with connection.execute_wrapper(wrapper):
        response = order(idempotency_key)
    with path.open("wb") as file:
        pickle.dump({
            "statements": statements, "idempotency_key": idempotency_key, "response": response,
            "schema": schemas[0], "database_url": os.environ["DATABASE_URL"], "redis_url": os.environ["REDIS_URL"],
        }, file)  # fmt: skip
    return key, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of real and floor (default 2)")
    args = parser.parse_args()

    from bench.profile_orders import setup_database

    server_url, (slot_client, slot), database_url, redis_url = setup_database()
    from bench import orders
    from bench.common import Context, free_port
    from bench.run import BENCH_DATABASE, recreate_database

    orders.DURATION = args.seconds
    ctx = Context(database_url=database_url, redis_url=redis_url, budget_seconds=3600)
    capture_path = ROOT / "var" / "bench" / "order-floor.pickle"
    capture_path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        key, body = capture(capture_path)
        for turn in range(args.rounds):
            for kind in ("real", "floor"):
                port = free_port()
                floor_env = dict(os.environ, ORDER_FLOOR_CAPTURE=str(capture_path))
                server = (
                    orders._start_server(ctx, port)
                    if kind == "real"
                    else orders.gunicorn_start("bench.order_floor_app:application", port, floor_env)
                )
                try:
                    orders._load(port, key, "POST", "/api/v1/orders", body.encode(), 16)  # every worker warm
                    for clients in (1, 16):
                        result = orders._load(port, key, "POST", "/api/v1/orders", body.encode(), clients, server.pid)
                        rows.append((turn + 1, kind, clients, result))
                        print(f"turn {turn + 1} {kind:5} {clients:2} clients: {result['rps']:.1f} orders/s", flush=True)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
    finally:
        from django.db import connections

        connections.close_all()
        capture_path.unlink(missing_ok=True)
        slot_client.delete(f"rp:test-slot:{slot}")
        recreate_database(server_url, BENCH_DATABASE.format(slot=slot), create=False)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    print("| turn | server | clients | orders/s | p50 ms | p99 ms | web CPU ms/order | PostgreSQL ms/order | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for turn, kind, clients, r in rows:
        print(
            f"| {turn} | {kind} | {clients} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r.get('web_cpu_ms_per_request')} | {r.get('pg_cpu_ms_per_request')} | {r['errors']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
