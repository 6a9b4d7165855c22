"""Celery tasks for webhooks (all on the `webhooks` queue): the delivery drain, and the beat sweeper."""

from __future__ import annotations

from celery import shared_task

from . import drain, sweeper


@shared_task(name="webhooks.tasks.webhook_deliveries_drain", acks_late=True, ignore_result=True)
def webhook_deliveries_drain() -> int:
    """Runs in the tenant schema it was sent from: sends that schema's due deliveries in batches, briefly."""
    return drain.webhook_deliveries_drain()


@shared_task(name="webhooks.tasks.webhook_delivery_attempt", acks_late=True, ignore_result=True)
def webhook_delivery_attempt(delivery_id: str) -> None:
    """One delivery (tasks queued before drains existed); the service guards on state, so duplicates are harmless."""
    drain.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.webhook_deliveries_sweep", ignore_result=True)
def webhook_deliveries_sweep() -> int:
    """Sent by beat every few seconds from the public schema; visits every tenant schema."""
    return sweeper.webhook_deliveries_sweep()
