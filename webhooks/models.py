"""Webhooks (tenant schema): the event outbox, receiver endpoints and their secrets, deliveries and attempts.

An `Event` is written in the transaction that changes state, with one `WebhookDelivery` per subscribed
endpoint. A delivery's id is the `webhook-id` header: the same on every retry and redelivery, so a
receiver can deduplicate. Each HTTP try is a `WebhookAttempt` row.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC

from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

# The public catalogue of event types (docs/api.md). `webhook.test` is only sent by the test-send endpoint.
EVENT_TYPES = (
    "order.created",
    "order.completed",
    "order.failed",
    "order.canceled",
    "order.approval_required",
    "order.approved",
    "order.rejected",
    "reward.delivered",
    "reward.delivery_failed",
    "reward.opened",
    "reward.redeemed",
    "reward.canceled",
    "reward.expired",
    "shipment.shipped",
    "shipment.delivered",
    "shipment.returned",
    "balance.low",
    "balance.credited",
    "batch.completed",
    "person.created",
    "person.updated",
    "person.deleted",
    "automation.fired",
    "automation.failed",
    "batch.approval_required",
    "batch.approved",
    "batch.rejected",
    "points.awarded",
    "points.redeemed",
    "points.expired",
    "points.expiring",
    "points.reversed",
    "activity.earned",
    "discount.redeemed",
    "webhook.test",
)
ALL_EVENTS = "*"


def new_id(prefix: str) -> str:
    """`<prefix>_` + 12 hex digits of milliseconds + 20 random hex digits: unique and roughly time-ordered."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def new_event_id() -> str:
    return new_id("evt")


def new_endpoint_id() -> str:
    return new_id("ep")


def new_delivery_id() -> str:
    return new_id("msg")


class Event(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    type = models.CharField(max_length=64)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="webhook_event_created"),
            models.Index(fields=["type", "-created_at", "-id"], name="webhook_event_type_created"),
            # The portal's reward timeline finds an object's events by data->'id' (reward, order, shipment ids).
            models.Index(KeyTransform("id", "data"), name="webhook_event_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"

    def payload(self) -> dict:
        """What receivers get: `{"id", "type", "created_at", "data"}`."""
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class WebhookEndpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_endpoint_id, editable=False)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=300, blank=True)
    # Subscribed event types; empty (or containing "*") means every type.
    events = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # Start of the current run of failed attempts (cleared by any success); drives the 5-day auto-disable.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"


class WebhookSecret(models.Model):
    """A signing secret (`whsec_…`, encrypted at rest). After rotation the old one signs until `expires_at`."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="secrets")
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # null: the current secret

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"secret of {self.endpoint_id} (expires {self.expires_at or 'never'})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for next_attempt_at
    SENDING = "sending"  # claimed by a worker until locked_until
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted, 410, or the endpoint was disabled


class WebhookDelivery(models.Model):
    """One event to one endpoint. Its id is the `webhook-id` header of every attempt."""

    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)  # every attempt ever (incl. redeliveries)
    # Failures since the delivery was (re)scheduled: the index into WEBHOOK_RETRY_SCHEDULE.
    retry_index = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a task was last published for this delivery; the sweeper re-publishes only long after it.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_event_endpoint"),
        ]
        indexes = [
            # The sweeper's scan: only unfinished deliveries are in this index.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"


class WebhookAttempt(models.Model):
    """One HTTP request to a receiver: what was sent (never the secret), what came back, how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)  # the first 1 KB of the body
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
