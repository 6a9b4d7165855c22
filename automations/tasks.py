"""Automation tasks: the beat's minute tick fans out one task per tenant schema; each sends what is due there."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(name="automations.tasks.automations_schedule")
def automations_schedule(now: str | None = None) -> int:
    """Beat (every minute): queue a tick in every active tenant schema that has automations or runs waiting
    (tenants.due). `now` (ISO 8601) pins the clock for tests and replays; a tick that runs twice finds nothing
    left to send."""
    from tenants.due import AUTOMATIONS, for_each_due_tenant

    from .running import automations_next_due

    queued = 0
    for _tenant in for_each_due_tenant(AUTOMATIONS, next_due=automations_next_due, active_only=True):
        automations_tick_task.delay(now)  # runs in this tenant's schema (tenant-schemas-celery)
        queued += 1
    return queued


@shared_task(
    name="automations.tasks.automations_tick_task",
    acks_late=True,
    autoretry_for=(OperationalError,),  # a dropped connection or a deadlock: that person's transaction rolled back
    retry_backoff=2,
    retry_jitter=True,
    max_retries=3,
)
def automations_tick_task(now: str | None = None) -> dict[str, int]:
    from datetime import datetime

    from .running import automations_tick

    return automations_tick(now=datetime.fromisoformat(now) if now else None)
