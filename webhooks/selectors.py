"""Reads for webhooks: endpoints, events, deliveries (with their attempts), and an endpoint's signing secrets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from core import crypto
from core.errors import NotFoundError

from .models import ALL_EVENTS, Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.all()


def endpoint_get(*, endpoint_id: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFoundError("No webhook endpoint with this id.")
    return endpoint


def endpoints_subscribed(*, type: str) -> QuerySet[WebhookEndpoint]:
    """Enabled endpoints that want `type`: those listing it, listing "*", or listing nothing (= all)."""
    return WebhookEndpoint.objects.filter(enabled=True).filter(Q(events=[]) | Q(events__overlap=[type, ALL_EVENTS]))


def event_list(*, type: str | None = None) -> QuerySet[Event]:
    qs = Event.objects.all()
    if type:
        qs = qs.filter(type=type)
    return qs


def event_get(*, event_id: str) -> Event:
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        raise NotFoundError("No event with this id.")
    return event


def delivery_list(
    *, endpoint: WebhookEndpoint | None = None, event: Event | None = None, status: str | None = None
) -> QuerySet[WebhookDelivery]:
    """Deliveries with their event type and attempts loaded in two queries whatever the page size."""
    qs = WebhookDelivery.objects.select_related("event").prefetch_related(
        Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number"))
    )
    if endpoint is not None:
        qs = qs.filter(endpoint=endpoint)
    if event is not None:
        qs = qs.filter(event=event)
    if status:
        qs = qs.filter(status=status)
    return qs


def signing_secrets(*, endpoint_id: str, now: datetime | None = None) -> list[str]:
    """The plaintext secrets that sign right now: the current one first, then any rotated out but not expired."""
    return signing_secrets_by_endpoint(endpoint_ids=[endpoint_id], now=now).get(endpoint_id, [])


def signing_secrets_by_endpoint(*, endpoint_ids: Iterable[str], now: datetime | None = None) -> dict[str, list[str]]:
    """`signing_secrets` of several endpoints in one query: {endpoint id: [current, then rotated-out ones]}."""
    now = now or timezone.now()
    rows = WebhookSecret.objects.filter(endpoint_id__in=list(endpoint_ids)).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    ordered = sorted(rows, key=lambda s: (s.endpoint_id, s.expires_at is not None, -s.created_at.timestamp()))
    result: dict[str, list[str]] = {}
    for row in ordered:
        result.setdefault(row.endpoint_id, []).append(crypto.decrypt(row.secret_encrypted))
    return result
