"""The business gauges of /metrics — open rewards, delivery lag, webhook backlog, ledger totals, low balances —
added up over every tenant schema at most once per METRICS_SNAPSHOT_SECONDS and kept in Redis.

A scrape reads the stored snapshot (one Redis GET), so neither the number of scrapers nor of web nodes multiplies
the work. Each schema's share (`schema_gauges`) is kept in `public.observability_schemagauges` and recomputed
only when the schema changed: statement triggers on the three tables the gauges read (rewards, webhook
deliveries, ledger accounts) note the schema in `public.tenants_tenantdueevent` (kind `metrics`, the due-work
mechanism of tenants.due) in the writing transaction, and a refresh visits the noted schemas and those with no
share yet, then adds up every share. Time-dependent gauges keep times, not ages (the oldest unfinished reward's
time, the earliest webhook attempt), so a quiet schema's delivery lag still grows. A share older than
METRICS_RECOMPUTE_SECONDS (an hour) is recomputed too, a few per refresh, oldest first: the safety net for a write
no trigger saw (rows written with triggers disabled, a restore), spread so no refresh visits every schema.

A schema's visit runs four small queries that only touch indexed, bounded sets: unfinished rewards through the
(status, deliver_at) index, unfinished webhook deliveries through their partial index, and the ledger's four
accounts per currency. Finished rewards and deliveries, the bulk of every table, are never read: their totals come
from counters (`rp_reward_transitions_total`, `rp_webhook_attempts_total`).
Beat refreshes it (observability.tasks); a scrape refreshes it inline only when it is missing or twice too old
(beat down, a fresh install), under a lock so one process does it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.db import connection
from core.redis import get_redis
from funds.models import AccountKind, LedgerAccount
from orders.models import Reward, RewardStatus
from tenants.due import METRICS, due_schemas, for_each_noted_tenant
from tenants.models import Tenant
from tenants.selectors import tenant_schemas_list
from webhooks.models import DeliveryStatus, WebhookDelivery

from .models import SchemaGauges

logger = logging.getLogger(__name__)
OPEN_REWARD_STATES = (RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.PROCESSING)
# Live tenants named in rp_tenant_balance_low (one series each); the count is always exact.
LOW_BALANCE_TENANTS_NAMED = 200


def _key(suffix: str) -> str:
    # Per database, so two installations (or two test runs) sharing one Redis never read each other's numbers.
    return f"rp:metrics:{settings.DATABASES['default']['NAME']}:{suffix}"


def schema_gauges() -> dict[str, Any]:
    """The current schema's share of the gauges, JSON-ready; times as epoch seconds, amounts as strings."""
    rows = Reward.objects.filter(status__in=OPEN_REWARD_STATES).values("status").annotate(n=Count("pk"))
    open_rewards = {row["status"]: row["n"] for row in rows.order_by()}
    # The oldest due time of a reward waiting for a worker. Unfiltered by time: an unscheduled reward's time is its
    # creation (past), a scheduled one's its deliver_at, so the rewards due at any later moment are exactly those
    # whose time has passed, and the earliest of them is this minimum once it has passed (snapshot_compute).
    due = Reward.objects.filter(status__in=(RewardStatus.PENDING, RewardStatus.PROCESSING)).aggregate(
        since=Min(Coalesce("deliver_at", "created_at"))
    )["since"]
    deliveries = WebhookDelivery.objects.filter(status__in=(DeliveryStatus.PENDING, DeliveryStatus.SENDING))
    stats = deliveries.aggregate(n=Count("pk"), due=Min("next_attempt_at"))
    ledger: dict[str, Decimal] = defaultdict(Decimal)  # "currency|kind" -> sum of balances
    low: list[str] = []  # currencies whose cash account is below its threshold
    for account in LedgerAccount.objects.only("currency", "kind", "balance", "low_balance_threshold"):
        ledger[f"{account.currency}|{account.kind}"] += account.balance
        threshold = account.low_balance_threshold
        if account.kind == AccountKind.CASH and threshold is not None and account.balance < threshold:
            low.append(account.currency)
    return {
        "open_rewards": open_rewards,
        "delivery_due_since": None if due is None else due.timestamp(),
        "webhook_backlog": stats["n"],
        "webhook_due_since": None if stats["due"] is None else stats["due"].timestamp(),
        "ledger": {key: str(value) for key, value in ledger.items()},
        "balance_low": low,
    }


def _schema_gauges_store(schema: str) -> dict[str, Any]:
    """Recompute the current schema's share and store it, under a lock per schema so that of two refreshes at
    once the one that read later writes later (a share never goes back to an older reading)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"rp:metrics:{schema}"])
        gauges = schema_gauges()
        SchemaGauges.objects.update_or_create(
            schema_name=schema, defaults={"gauges": gauges, "computed_at": timezone.now()}
        )
    return gauges


def _stale_quota(schemas: int) -> int:
    """How many shares older than METRICS_RECOMPUTE_SECONDS one refresh recomputes (oldest first): twice an even
    spread of every schema over that period, so a backlog drains and the safety net never makes one refresh as long
    as a pass over every schema (which beat's time limit would cut short, at every try)."""
    per_period = max(1, int(settings.METRICS_RECOMPUTE_SECONDS) // max(1, int(settings.METRICS_SNAPSHOT_SECONDS)))
    return 2 * math.ceil(schemas / per_period)


# The shares of every tenant schema (live and sandbox), added up in one statement: a few result rows, however many
# schemas (turning every share into Python objects cost ~25 µs a schema, 47 ms at 2,000). {tenants} is
# tenant_schemas_list's query (its parameters first), each later %s the refresh's time in epoch seconds.
_ADD_UP = """
WITH t AS ({tenants}),
s AS (
    SELECT CASE WHEN t.is_sandbox THEN 'sandbox' ELSE 'live' END AS mode, t.slug, g.gauges
    FROM {shares} g JOIN t ON t.schema_name = g.schema_name
)
SELECT 'open', mode || '|' || o.key, sum(o.value::bigint)::text
    FROM s, jsonb_each_text(s.gauges -> 'open_rewards') o GROUP BY 1, 2
UNION ALL SELECT 'ledger', mode || '|' || l.key, sum(l.value::numeric)::text
    FROM s, jsonb_each_text(s.gauges -> 'ledger') l GROUP BY 1, 2
UNION ALL SELECT 'backlog', mode, sum((gauges ->> 'webhook_backlog')::bigint)::text FROM s GROUP BY 1, 2
UNION ALL SELECT 'lag', mode, max(%s - (gauges ->> 'delivery_due_since')::float8)::text
    FROM s WHERE (gauges ->> 'delivery_due_since')::float8 <= %s GROUP BY 1, 2
UNION ALL SELECT 'webhook_due', mode, max(%s - (gauges ->> 'webhook_due_since')::float8)::text
    FROM s WHERE (gauges ->> 'webhook_due_since')::float8 <= %s GROUP BY 1, 2
UNION ALL SELECT 'low', slug, c FROM s, jsonb_array_elements_text(s.gauges -> 'balance_low') c WHERE mode = 'live'
"""


def _to_visit(tenants: QuerySet[Tenant], count: int, now: datetime) -> list[str]:
    """The schemas a refresh recomputes: the noted ones (a deleted tenant's notes are dropped by the visit), any
    schema with no share yet (new tenants, a fresh install), and the oldest shares past METRICS_RECOMPUTE_SECONDS
    (the safety net for a write no trigger saw), a few. Indexed or anti-join queries: nothing enters a schema and
    no row per schema comes back to Python."""
    noted = due_schemas(METRICS, active_only=False)
    shared = SchemaGauges.objects.values("schema_name")
    missing = tenants.exclude(schema_name__in=shared).exclude(schema_name__in=noted)
    cutoff = now - timedelta(seconds=settings.METRICS_RECOMPUTE_SECONDS)
    stale = (
        SchemaGauges.objects.filter(computed_at__lt=cutoff, schema_name__in=tenants.values("schema_name"))
        .exclude(schema_name__in=noted)
        .order_by("computed_at")
        .values_list("schema_name", flat=True)[: _stale_quota(count)]
    )
    return [*noted, *missing.values_list("schema_name", flat=True), *stale]


def snapshot_compute(*, full: bool = False) -> dict[str, Any]:
    """Recompute the shares of the schemas that changed since the last refresh, of those without one, and of a few
    older than METRICS_RECOMPUTE_SECONDS (every schema when `full`), then add up every tenant schema's (live and
    sandbox); JSON-ready. `schemas_visited` says how many were recomputed."""
    started = time.perf_counter()
    now = timezone.now()
    tenants = tenant_schemas_list(active_only=False)
    count = tenants.count()
    if full:
        visit = list(tenants.values_list("schema_name", flat=True))
    else:
        visit = _to_visit(tenants, count, now)
    visited = 0
    for tenant in for_each_noted_tenant(METRICS, visit, next_due=lambda: None):
        _schema_gauges_store(tenant.schema_name)
        visited += 1
    SchemaGauges.objects.exclude(schema_name__in=tenants.values("schema_name")).delete()  # tenants gone

    open_rewards: dict[str, int] = {}  # "mode|status" -> count
    lag: dict[str, float] = {"live": 0.0, "sandbox": 0.0}
    backlog: dict[str, int] = {"live": 0, "sandbox": 0}
    webhook_due_age: dict[str, float] = {"live": 0.0, "sandbox": 0.0}
    ledger: dict[str, str] = {}  # "mode|currency|kind" -> sum of balances
    low: list[tuple[str, str]] = []  # (tenant slug, currency), live tenants only: sandbox money is not real
    tenants_sql, tenants_params = tenants.values("schema_name", "slug", "is_sandbox").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            _ADD_UP.format(tenants=tenants_sql, shares=SchemaGauges._meta.db_table),
            [*tenants_params, *[now.timestamp()] * 4],
        )
        rows = cursor.fetchall()
    for what, key, value in rows:
        if what == "open":
            open_rewards[key] = int(value)
        elif what == "ledger":
            ledger[key] = str(Decimal(value))
        elif what == "backlog":
            backlog[key] = int(value)
        elif what == "lag":  # how long the oldest reward that is due has waited for a worker (none due: 0)
            lag[key] = max(0.0, float(value))
        elif what == "webhook_due":
            webhook_due_age[key] = max(0.0, float(value))
        else:
            low.append((key, value))
    elapsed = round(time.perf_counter() - started, 3)
    logger.info(
        "metrics snapshot computed",
        extra={
            "event": "metrics.snapshot",
            "schemas": count,
            "visited": visited,
            "full": full,
            "seconds": elapsed,
        },
    )
    return {
        "computed_at": time.time(),
        "compute_seconds": elapsed,
        "tenant_schemas": count,
        "schemas_visited": visited,
        "full_pass": full,
        "open_rewards": open_rewards,
        "delivery_lag_seconds": lag,
        "webhook_backlog": backlog,
        "webhook_oldest_due_seconds": webhook_due_age,
        "ledger": ledger,
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
