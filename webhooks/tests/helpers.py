"""Helpers for webhook tests: run due deliveries in-process, and verify what a receiver got."""

from __future__ import annotations

import json

from django.utils import timezone
from standardwebhooks import Webhook

from webhooks.drain import webhook_delivery_attempt
from webhooks.models import DeliveryStatus, WebhookDelivery


def attempt_now(delivery: WebhookDelivery):
    """Make the next attempt at once (as if its retry time had come)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    return webhook_delivery_attempt(delivery_id=delivery.pk)


def run_pending() -> int:
    """Attempt every pending delivery of the current schema once; returns how many were attempted."""
    count = 0
    for delivery in WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("created_at"):
        if attempt_now(delivery) is not None:
            count += 1
    return count


def verify(secret: str, received) -> dict:
    """standardwebhooks verification, exactly as a receiver would do it."""
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload == json.loads(received.body)
    return payload
