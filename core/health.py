"""Liveness and readiness: /healthz (the process answers), /readyz (database, broker, workers)."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, JsonResponse

from core.redis import get_redis

WORKER_HEARTBEAT_KEY = "rp:worker-heartbeat"
# A worker counts as connected if it pinged within this many seconds (beat pings every 15 s, and each
# worker also pings when it starts).
WORKER_HEARTBEAT_MAX_AGE = 60


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:
        return False, type(exc).__name__


def _check_broker() -> tuple[bool, str]:
    from core.broker import broker_is_amqp, broker_ping

    if not broker_is_amqp():
        try:
            get_redis().ping()
            return True, "ok"
        except Exception as exc:
            return False, type(exc).__name__
    # RabbitMQ: the broker is its own server; Redis (cache, rate limits, heartbeats) is checked as `workers`.
    return broker_ping()


def _check_workers() -> tuple[bool, str]:
    try:
        beats = get_redis().hgetall(WORKER_HEARTBEAT_KEY)
    except Exception as exc:
        return False, type(exc).__name__
    now = time.time()
    alive = [name for name, at in beats.items() if now - float(at) < WORKER_HEARTBEAT_MAX_AGE]
    if alive:
        return True, f"{len(alive)} worker(s) reported in the last minute"
    # No recent heartbeat (beat may be down): ask the workers directly, returning on the first reply.
    from rewards_portal.celery import app

    try:
        replies = app.control.ping(timeout=1.0, limit=1)
    except Exception as exc:
        return False, type(exc).__name__
    if replies:
        return True, f"{len(replies)} worker(s) answered a ping"
    return False, "no worker has reported in the last minute or answered a ping"


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker(), "workers": _check_workers()}
    ready = all(ok for ok, _ in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
