"""The business gauges of /metrics — open rewards, delivery lag, webhook backlog, ledger totals, low balances —
added up over every tenant schema at most once per METRICS_SNAPSHOT_SECONDS and kept in Redis.

A scrape reads the stored snapshot (one Redis GET), so neither the number of scrapers nor of web nodes multiplies
the work. Computing it visits each schema with four small queries that only touch indexed, bounded sets:
unfinished rewards through the (status, deliver_at) index, unfinished webhook deliveries through their partial
index, and the ledger's four accounts per currency. Finished rewards and deliveries, the bulk of every table, are
never read: their totals come from counters (`rp_reward_transitions_total`, `rp_webhook_attempts_total`).
Beat refreshes it (observability.tasks); a scrape refreshes it inline only when it is missing or twice too old
(beat down, a fresh install), under a lock so one process does it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.redis import get_redis
from funds.models import AccountKind, LedgerAccount
from orders.models import Reward, RewardStatus
from tenants.selectors import for_each_tenant
from webhooks.models import DeliveryStatus, WebhookDelivery

logger = logging.getLogger(__name__)
OPEN_REWARD_STATES = (RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.PROCESSING)
# Live tenants named in rp_tenant_balance_low (one series each); the count is always exact.
LOW_BALANCE_TENANTS_NAMED = 200


def _key(suffix: str) -> str:
    # Per database, so two installations (or two test runs) sharing one Redis never read each other's numbers.
    return f"rp:metrics:{settings.DATABASES['default']['NAME']}:{suffix}"


def snapshot_compute() -> dict[str, Any]:
    """Visit every tenant schema (live and sandbox) and add up the gauges; JSON-ready."""
    started = time.perf_counter()
    now = timezone.now()
    open_rewards: dict[str, int] = defaultdict(int)  # "mode|status" -> count
    lag: dict[str, float] = {"live": 0.0, "sandbox": 0.0}
    backlog: dict[str, int] = {"live": 0, "sandbox": 0}
    webhook_due_age: dict[str, float] = {"live": 0.0, "sandbox": 0.0}
    ledger: dict[str, Decimal] = defaultdict(Decimal)  # "mode|currency|kind" -> sum of balances
    low: list[tuple[str, str]] = []  # (tenant slug, currency), live tenants only: sandbox money is not real
    tenants = 0
    for tenant in for_each_tenant(active_only=False):
        tenants += 1
        mode = "sandbox" if tenant.is_sandbox else "live"
        rows = Reward.objects.filter(status__in=OPEN_REWARD_STATES).values("status").annotate(n=Count("pk"))
        for row in rows.order_by():
            open_rewards[f"{mode}|{row['status']}"] += row["n"]
        # Delivery lag: how long the oldest reward that is due has been waiting for a worker.
        due = Reward.objects.filter(
            Q(deliver_at__isnull=True) | Q(deliver_at__lte=now),
            status__in=(RewardStatus.PENDING, RewardStatus.PROCESSING),
        ).aggregate(since=Min(Coalesce("deliver_at", "created_at")))["since"]
        if due is not None:
            lag[mode] = max(lag[mode], (now - due).total_seconds())
        deliveries = WebhookDelivery.objects.filter(status__in=(DeliveryStatus.PENDING, DeliveryStatus.SENDING))
        stats = deliveries.aggregate(n=Count("pk"), due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now)))
        backlog[mode] += stats["n"]
        if stats["due"] is not None:
            webhook_due_age[mode] = max(webhook_due_age[mode], (now - stats["due"]).total_seconds())
        for account in LedgerAccount.objects.only("currency", "kind", "balance", "low_balance_threshold"):
            ledger[f"{mode}|{account.currency}|{account.kind}"] += account.balance
            threshold = account.low_balance_threshold
            if mode == "live" and account.kind == AccountKind.CASH and threshold is not None:
                if account.balance < threshold:
                    low.append((tenant.slug, account.currency))
    return {
        "computed_at": time.time(),
        "compute_seconds": round(time.perf_counter() - started, 3),
        "tenant_schemas": tenants,
        "open_rewards": dict(open_rewards),
        "delivery_lag_seconds": lag,
        "webhook_backlog": backlog,
        "webhook_oldest_due_seconds": webhook_due_age,
        "ledger": {key: str(value) for key, value in ledger.items()},
        "balance_low": sorted(low),
    }


def snapshot_refresh() -> dict[str, Any]:
    """Compute and store the snapshot (beat calls this every METRICS_SNAPSHOT_SECONDS)."""
    snapshot = snapshot_compute()
    get_redis().set(_key("snapshot"), json.dumps(snapshot), ex=max(60, settings.METRICS_SNAPSHOT_SECONDS * 20))
    return snapshot


def snapshot_get() -> dict[str, Any] | None:
    """The stored snapshot; refreshed here first when it is missing or more than twice its interval old and
    no other process is refreshing it. None when Redis is unreachable and nothing could be computed."""
    redis = get_redis()
    try:
        raw = redis.get(_key("snapshot"))
    except Exception:
        return None
    snapshot = json.loads(raw) if raw else None
    too_old = snapshot is None or time.time() - snapshot["computed_at"] > 2 * settings.METRICS_SNAPSHOT_SECONDS
    if too_old and redis.set(_key("refreshing"), "1", nx=True, ex=max(30, settings.METRICS_SNAPSHOT_SECONDS)):
        try:
            snapshot = snapshot_refresh()
        except Exception:  # the database away: the scrape still serves the process metrics and the old gauges
            logger.warning("metrics snapshot not refreshed", exc_info=True, extra={"event": "metrics.snapshot_failed"})
        finally:
            redis.delete(_key("refreshing"))
    return snapshot
