"""The web processes' CPU per request, layer by layer, through the same gunicorn as the orders benchmark.

Not part of the default `make bench` (`make bench ARGS=layers`): it shows what a request costs before the order
path adds its own work, so a change can be placed. Each row is one endpoint at 1 and 16 clients:

- `/healthz`: gunicorn, WSGI and every middleware, no database or Redis (the floor of any request);
- `GET /api/v1/balances`: plus API key authentication (the key cache's Redis stamp), DRF, the rate limit and one
  small query: the floor of an API request;
- `GET /api/v1/products`: plus a page of serialized products;
- `POST /api/v1/orders`: the order path (bench/orders.py's request).

LAYERS=orders,balances and LAYERS_CLIENTS=16 pick rows; LAYERS_WORKERS sets gunicorn's processes (default 3).
"""

from __future__ import annotations

import os
import signal

from .common import Context, Row
from .orders import _free_port, _load, _setup, _start_server

ENDPOINTS = [
    ("healthz", "GET", "/healthz"),
    ("balances", "GET", "/api/v1/balances"),
    ("products", "GET", "/api/v1/products"),
    ("orders", "POST", "/api/v1/orders"),
]


def run(ctx: Context) -> list[Row]:
    key, body = _setup()
    port = _free_port()
    server = _start_server(ctx, port, workers=int(os.environ.get("LAYERS_WORKERS", "3")))
    which = os.environ.get("LAYERS", ",".join(name for name, _, _ in ENDPOINTS)).split(",")
    levels = [int(clients) for clients in os.environ.get("LAYERS_CLIENTS", "1,16").split(",")]
    rows = []
    try:
        _load(port, key, "GET", "/api/v1/products", None, 4, server.pid)  # warm up every gunicorn worker
        for name, method, path in ENDPOINTS:
            if name not in which:
                continue
            for clients in levels:
                result = _load(port, key, method, path, body.encode() if method == "POST" else None, clients,
                               server.pid)  # fmt: skip
                rows.append(
                    Row(
                        f"{method} {path}, {clients} client(s)",
                        result["web_cpu_ms_per_request"],
                        "ms web CPU/request",
                        f"{result['rps']:.1f} req/s",
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, {result['errors']} errors; "
                        f"PostgreSQL {result.get('pg_cpu_ms_per_request', '?')} ms/request; "
                        f"load {result['loadavg'][0]}",
                        extra=result,
                    )
                )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return rows
