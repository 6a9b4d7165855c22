"""Waking drains: after a commit, publish at most one drain task per schema; if the broker is down, the sweeper will.

A drain published and not yet started holds a short-lived Redis flag, so commits meanwhile publish nothing
more: the drain claims after it clears the flag, and so sees their deliveries. Every module that schedules
deliveries (events, redelivery, the drain's retries, the sweeper) wakes a drain through here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.db import transaction
from django_tenants.utils import schema_context

from core.db import connection
from core.redis import get_redis

from .models import WebhookDelivery

logger = logging.getLogger(__name__)

# How long the flag of a published drain lives: it expires in case the task is lost.
DRAIN_FLAG_SECONDS = 5


class _DrainOnCommit:
    """The on-commit callback that wakes a drain for one schema: one per transaction, whatever it emitted."""

    def __init__(self, *, schema_name: str, countdown: float, dedupe: bool) -> None:
        self.schema_name = schema_name
        self.countdown = countdown
        self.dedupe = dedupe
        self.delivery_ids: list[str] = []

    def __call__(self) -> None:
        publish_drain(self.schema_name, countdown=self.countdown, delivery_ids=self.delivery_ids, dedupe=self.dedupe)


def drain_on_commit(delivery_ids: list[str], *, countdown: float = 0, dedupe: bool = True) -> None:
    """After commit, publish a drain task for the current schema (one per transaction, however many calls).

    robust: a broker outage must not turn a committed business transaction into an error; the sweeper
    publishes whatever did not make it.
    """
    if not delivery_ids:
        return
    schema_name = connection.schema_name
    if dedupe and connection.in_atomic_block:
        # Django 5 keeps (savepoint ids, callback, robust) per entry; django-stubs still declares two items.
        for _, callback, _ in connection.run_on_commit:  # type: ignore[misc]
            if (
                isinstance(callback, _DrainOnCommit)
                and callback.dedupe
                and callback.schema_name == schema_name
                and callback.countdown == countdown
            ):
                callback.delivery_ids.extend(delivery_ids)
                return
    callback = _DrainOnCommit(schema_name=schema_name, countdown=countdown, dedupe=dedupe)
    callback.delivery_ids.extend(delivery_ids)
    transaction.on_commit(callback, robust=True)


def _drain_flag(schema_name: str, countdown: float = 0) -> tuple[str, int]:
    """(key, ttl ms) of the flag for an immediate drain, or for a delayed one due in the same 100 ms."""
    base = f"webhooks:drain:{connection.settings_dict['NAME']}:{schema_name}"
    if countdown < 0.1:
        return base, DRAIN_FLAG_SECONDS * 1000
    return f"{base}:at:{round((time.time() + countdown) * 10)}", int((countdown + DRAIN_FLAG_SECONDS) * 1000)


def _drain_flag_take(schema_name: str, countdown: float = 0) -> bool:
    """True if no drain (for that moment) is waiting to start: the caller must publish one."""
    key, ttl = _drain_flag(schema_name, countdown)
    try:
        return bool(get_redis().set(key, b"1", nx=True, px=ttl))
    except Exception:
        return True  # Redis trouble: publish anyway (the broker may still take it; else the sweeper)


def drain_flag_clear(schema_name: str) -> None:
    """A drain starting: from now on a commit in this schema publishes a new drain."""
    try:
        get_redis().delete(_drain_flag(schema_name)[0])
    except Exception:
        logger.warning("webhook drain flag not cleared", exc_info=True)  # it expires by itself


def publish_drain(
    schema_name: str, *, countdown: float = 0, delivery_ids: Iterable[str] = (), dedupe: bool = True
) -> bool:
    """Publish a drain task for the schema (unless one is already waiting); True if published.

    If the broker refuses, the deliveries are marked never-published so the next sweep publishes them.
    Other modules call it as `publish.publish_drain` (not a copied name), so a test can stand in for it.
    """
    from .tasks import webhook_deliveries_drain  # tasks imports the drain, which imports this module

    if dedupe and not _drain_flag_take(schema_name, countdown):
        return False
    try:
        webhook_deliveries_drain.apply_async(countdown=countdown or None, headers={"_schema_name": schema_name})
    except Exception:
        logger.exception("webhook drain publish failed; the sweeper will retry", extra={"schema": schema_name})
        if countdown < 0.1:
            drain_flag_clear(schema_name)
        ids = list(delivery_ids)
        if ids:
            with schema_context(schema_name):
                WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=None)
        return False
    return True
