"""Fulfilment tasks (queue `delivery`): ids in, services do the work and guard on state."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from .suppliers import SupplierError

logger = logging.getLogger(__name__)


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter: 2, 4, 8 … seconds, capped."""
    ceiling = min(settings.FULFILMENT_RETRY_MAX_SECONDS, settings.FULFILMENT_RETRY_BASE_SECONDS * 2**retries)
    return random.uniform(ceiling / 2, ceiling)


@shared_task(bind=True, name="fulfillment.tasks.reward_fulfil_task", acks_late=True, max_retries=None)
def reward_fulfil_task(self, reward_id: str) -> None:
    from .services import reward_fail_locked, reward_fulfil

    try:
        reward_fulfil(reward_id=reward_id)
    except SupplierError as exc:
        if self.request.retries >= settings.FULFILMENT_MAX_RETRIES:
            reward_fail_locked(reward_id=reward_id, reason=f"supplier kept failing: {exc}")
            return
        countdown = exc.retry_after or _backoff(self.request.retries)
        logger.info(
            "supplier unavailable; retrying",
            extra={"event": "reward.retry", "reward_id": reward_id, "attempt": self.request.retries + 1},
        )
        raise self.retry(countdown=countdown, exc=exc) from None


@shared_task(name="fulfillment.tasks.fulfil_drain_task", acks_late=True)
def fulfil_drain_task() -> int:
    """Fulfil the schema's due email, API and link rewards in batches, for one drain's turn (fulfillment.drain)."""
    from .drain import fulfil_drain

    return fulfil_drain()


@shared_task(bind=True, name="fulfillment.tasks.reward_deliver_task", acks_late=True, max_retries=5)
def reward_deliver_task(self, reward_id: str) -> None:
    from .services import reward_deliver

    try:
        # The task id is kept across retries and redeliveries: every copy of this resend has one Message-ID.
        reward_deliver(reward_id=reward_id, send_id=self.request.id or "")
    except OSError as exc:  # SMTP/connection trouble: the message may go through later
        raise self.retry(countdown=_backoff(self.request.retries), exc=exc) from None


@shared_task(name="fulfillment.tasks.fulfilment_sweep")
def fulfilment_sweep() -> int:
    """Beat: in every active tenant schema with open rewards due (tenants.due), send scheduled rewards that are
    due and re-queue stale ones."""
    from tenants.due import FULFILMENT, for_each_due_tenant

    from .services import rewards_due, rewards_next_due

    queued = 0
    for _tenant in for_each_due_tenant(FULFILMENT, next_due=rewards_next_due, active_only=True):
        for reward_id in rewards_due():
            reward_fulfil_task.delay(reward_id)
            queued += 1
    return queued


@shared_task(name="fulfillment.tasks.reminders_sweep")
def reminders_sweep() -> int:
    """Beat: in every active tenant schema with a reminder due (tenants.due), remind recipients of unclaimed claim
    links on their program's schedule (fulfillment.reminders; each reminder once)."""
    from tenants.due import REMINDERS, for_each_due_tenant

    from .reminders import rewards_next_reminder, rewards_remind

    sent = 0
    for _tenant in for_each_due_tenant(REMINDERS, next_due=rewards_next_reminder, active_only=True):
        sent += rewards_remind()
    return sent
