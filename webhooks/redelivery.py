"""Redelivery on request: send an event again, or an endpoint's failed deliveries, with the same webhook-ids."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import ApplicationError

from .models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from .publish import drain_on_commit

REDELIVER_MAX = 10_000  # deliveries one redeliver-failed call may reschedule


def _reschedule(qs: QuerySet[WebhookDelivery]) -> list[str]:
    """Send deliveries again now, on a fresh schedule, with the same ids (= the same webhook-id).

    Finished ones start over; pending ones waiting for a retry are brought forward; one being sent is left.
    """
    now = timezone.now()
    ids = list(
        qs.select_for_update(skip_locked=True, of=("self",))
        .exclude(status=DeliveryStatus.SENDING)
        .order_by("pk")
        .values_list("id", flat=True)[:REDELIVER_MAX]
    )
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, retry_index=0, next_attempt_at=now, enqueued_at=now, claim_token=""
    )
    drain_on_commit(ids)
    return ids


def event_redeliver(*, event: Event, endpoint_id: str | None = None) -> list[WebhookDelivery]:
    """Send an event again to each enabled endpoint it went to (or to one, which it may not have gone to)."""
    with transaction.atomic():
        if endpoint_id is not None:
            endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
            if endpoint is None:
                raise ApplicationError(
                    "No webhook endpoint with this id.",
                    code="validation_error",
                    errors={"endpoint_id": ["Unknown endpoint."]},
                )
            if not endpoint.enabled:
                raise ApplicationError(
                    "The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409
                )
            delivery, created = WebhookDelivery.objects.get_or_create(
                event=event, endpoint=endpoint, defaults={"enqueued_at": timezone.now()}
            )
            if created:
                drain_on_commit([delivery.pk])
            qs = WebhookDelivery.objects.filter(pk=delivery.pk)
        else:
            qs = WebhookDelivery.objects.filter(event=event, endpoint__enabled=True)
        _reschedule(qs)
        return list(qs.select_related("event").order_by("created_at", "id"))


def webhook_endpoint_redeliver_failed(*, endpoint: WebhookEndpoint, since: datetime, until: datetime | None) -> int:
    """Reschedule this endpoint's failed deliveries of events created in [since, until)."""
    if not endpoint.enabled:
        raise ApplicationError("The endpoint is disabled; enable it first.", code="endpoint_disabled", status=409)
    until = until or timezone.now()
    if since >= until:
        raise ApplicationError(
            "`since` must be before `until`.", code="validation_error", errors={"since": ["Must be before until."]}
        )
    with transaction.atomic():
        qs = WebhookDelivery.objects.filter(
            endpoint=endpoint,
            status=DeliveryStatus.FAILED,
            event__created_at__gte=since,
            event__created_at__lt=until,
        )
        return len(_reschedule(qs))
