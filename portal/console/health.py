"""Operator console: health across tenants (queue lengths, worker heartbeats, failed rewards in the last day,
disabled webhook endpoints); the page still renders when the broker is down."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.db import connection
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django_tenants.utils import tenant_context

from .base import operator_required, tenant_schemas


def queue_lengths() -> list[dict]:
    from core.broker import queue_depths
    from rewards_portal.celery import QUEUES

    depths = queue_depths()  # the page still renders when the broker is down
    if depths is None:
        return [{"name": name, "length": None, "error": gettext("broker unavailable")} for name in QUEUES]
    return [{"name": name, "length": depths[name]} for name in QUEUES]


def worker_status() -> dict:
    from core.health import WORKER_HEARTBEAT_KEY, WORKER_HEARTBEAT_MAX_AGE
    from core.redis import get_redis

    try:
        beats = get_redis().hgetall(WORKER_HEARTBEAT_KEY)
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__, "alive": [], "stale_count": 0}
    now = time.time()
    workers: list[dict[str, Any]] = sorted(
        (
            {"name": name.decode() if isinstance(name, bytes) else name, "age": int(now - float(at))}
            for name, at in beats.items()
        ),
        key=lambda w: w["age"],
    )
    alive = [w for w in workers if w["age"] < WORKER_HEARTBEAT_MAX_AGE]
    detail = f"{len(alive)} worker(s) reported in the last minute" if alive else "no recent worker heartbeat"
    return {"ok": bool(alive), "detail": detail, "alive": alive, "stale_count": len(workers) - len(alive)}


@operator_required
def health_view(request):
    from orders.models import Reward, RewardStatus
    from webhooks.models import WebhookEndpoint

    since = timezone.now() - timedelta(hours=24)
    failures, endpoints = [], []
    for tenant in tenant_schemas():
        with tenant_context(tenant):
            counts = {
                status: Reward.objects.filter(status=status, updated_at__gte=since).count()
                for status in (RewardStatus.FAILED, RewardStatus.DELIVERY_FAILED)
            }
            if any(counts.values()):
                failures.append({"tenant": tenant, "failed": counts[RewardStatus.FAILED],
                                 "delivery_failed": counts[RewardStatus.DELIVERY_FAILED]})  # fmt: skip
            for endpoint in WebhookEndpoint.objects.filter(enabled=False):
                endpoints.append({"tenant": tenant, "url": endpoint.url, "reason": endpoint.disabled_reason})
    connection.set_schema_to_public()
    context = {
        "queues": queue_lengths(),
        "workers": worker_status(),
        "failures": failures,
        "endpoints": endpoints,
        "page_title": gettext("Health"),
        "nav_section": "health",
    }
    return render(request, "console/health.html", context)
