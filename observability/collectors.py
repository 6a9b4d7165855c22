"""Metric families read at scrape time: the business snapshot (observability.snapshot) and the broker's queues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.broker import queue_depths
from observability.snapshot import LOW_BALANCE_TENANTS_NAMED, snapshot_get


class BusinessCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        depths = queue_depths()
        up = GaugeMetricFamily("rp_broker_up", "1 if the broker answered the queue-depth query")
        up.add_metric([], 0 if depths is None else 1)
        yield up
        depth = GaugeMetricFamily("rp_celery_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        for name, count in sorted((depths or {}).items()):
            depth.add_metric([name], count)
        yield depth
        snapshot = snapshot_get()
        if snapshot is not None:
            yield from self._snapshot_families(snapshot)

    @staticmethod
    def _snapshot_families(snapshot: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily("rp_metrics_snapshot_age_seconds", "Age of the business gauges below")
        age.add_metric([], max(0.0, time.time() - snapshot["computed_at"]))
        yield age
        cost = GaugeMetricFamily("rp_metrics_snapshot_compute_seconds", "Time the last snapshot took to compute")
        cost.add_metric([], snapshot["compute_seconds"])
        yield cost
        schemas = GaugeMetricFamily("rp_tenant_schemas", "Tenant schemas (live and sandbox) added up")
        schemas.add_metric([], snapshot["tenant_schemas"])
        yield schemas
        rewards = GaugeMetricFamily(
            "rp_rewards_open", "Rewards not finished yet, by mode and status", labels=["mode", "status"]
        )
        for key, count in sorted(snapshot["open_rewards"].items()):
            rewards.add_metric(key.split("|"), count)
        yield rewards
        lag = GaugeMetricFamily(
            "rp_reward_delivery_lag_seconds", "Age of the oldest due reward not delivered yet", labels=["mode"]
        )
        for mode, seconds in sorted(snapshot["delivery_lag_seconds"].items()):
            lag.add_metric([mode], seconds)
        yield lag
        backlog = GaugeMetricFamily("rp_webhook_backlog", "Webhook deliveries pending or sending", labels=["mode"])
        for mode, count in sorted(snapshot["webhook_backlog"].items()):
            backlog.add_metric([mode], count)
        yield backlog
        due = GaugeMetricFamily(
            "rp_webhook_oldest_due_seconds", "How overdue the oldest due webhook delivery is", labels=["mode"]
        )
        for mode, seconds in sorted(snapshot["webhook_oldest_due_seconds"].items()):
            due.add_metric([mode], seconds)
        yield due
        ledger = GaugeMetricFamily(
            "rp_ledger_balance",
            "Sum over tenants of the ledger accounts' balances (cash = available, holds = held)",
            labels=["mode", "currency", "account"],
        )
        for key, amount in sorted(snapshot["ledger"].items()):
            ledger.add_metric(key.split("|"), float(amount))
        yield ledger
        low = snapshot["balance_low"]
        counts = GaugeMetricFamily(
            "rp_tenants_balance_low",
            "Live tenants whose available funds are below their alert threshold",
            labels=["currency"],
        )
        per_currency: dict[str, int] = {}
        for _, currency in low:
            per_currency[currency] = per_currency.get(currency, 0) + 1
        for currency, count in sorted(per_currency.items()):
            counts.add_metric([currency], count)
        yield counts
        named = GaugeMetricFamily(
            "rp_tenant_balance_low",
            f"1 for each live tenant below its threshold (the first {LOW_BALANCE_TENANTS_NAMED} by slug)",
            labels=["tenant", "currency"],
        )
        for slug, currency in low[:LOW_BALANCE_TENANTS_NAMED]:
            named.add_metric([slug, currency], 1)
        yield named
