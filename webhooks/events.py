"""The event outbox: `event_emit` records an event and its deliveries in the caller's transaction.

Delivery is at-least-once, in batches: on commit, at most one drain task is published for the schema
(webhooks.publish), which sends the due deliveries (webhooks.drain); the sweeper (webhooks.sweeper) publishes
whatever a lost publish or a killed worker left behind. The same webhook-id is then sent again, and
receivers deduplicate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from core.bulk import insert_together

from .models import EVENT_TYPES, Event, WebhookDelivery
from .publish import drain_on_commit
from .retries import retry_schedule
from .selectors import endpoints_subscribed


def event_emit(*, type: str, data: dict[str, Any], write_with: Sequence[Sequence[models.Model]] = ()) -> Event:
    """Record an event and queue it for every enabled endpoint subscribed to `type`.

    Call it inside the `transaction.atomic()` block that makes the change the event announces: if that
    rolls back, nothing is recorded or sent; once it commits, delivery is guaranteed (at least once).
    `write_with`: the caller's new rows (groups of one model each, as core.bulk.insert_together), written by
    the event's own statement: one round trip for the change and its event.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}; add it to webhooks.models.EVENT_TYPES")
    if not connection.in_atomic_block:
        raise RuntimeError("event_emit() must be called inside the caller's transaction.atomic() block")
    event = _event_new(type=type, data=data)
    # One round trip: the event's INSERT and the read of the endpoints that want it share a statement.
    endpoint_ids = [endpoint_id for (endpoint_id,) in insert_together(*write_with, [event], then=_subscribed_sql(type))]
    _deliveries_create(events=[event], endpoint_ids=endpoint_ids)
    return event


def event_emit_many(*, type: str, datas: list[dict[str, Any]]) -> list[Event]:
    """event_emit for a batch of events of one type (the fulfilment drain's `reward.delivered`s), set-based: the
    events in one INSERT, the subscribed endpoints read once, their deliveries in one INSERT. Same rules: inside
    the caller's transaction, delivered at least once after it commits."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}; add it to webhooks.models.EVENT_TYPES")
    if not connection.in_atomic_block:
        raise RuntimeError("event_emit_many() must be called inside the caller's transaction.atomic() block")
    if not datas:
        return []
    events = Event.objects.bulk_create([_event_new(type=type, data=data) for data in datas])
    _deliveries_create(events=events, endpoint_ids=list(endpoints_subscribed(type=type).values_list("id", flat=True)))
    return events


def event_record(*, type: str, data: dict[str, Any], endpoint_ids: list[str]) -> Event:
    """An event for the endpoints given (whatever they subscribe to), e.g. a test send.

    Runs in the caller's transaction, without a savepoint: an insert for the event, one for its deliveries.
    """
    event = _event_new(type=type, data=data)
    event.save(force_insert=True)
    _deliveries_create(events=[event], endpoint_ids=endpoint_ids)
    return event


@lru_cache(maxsize=len(EVENT_TYPES))
def _subscribed_sql(type: str) -> tuple[str, tuple[Any, ...]]:
    """endpoints_subscribed(type)'s ids as (SQL, params), compiled once per process: the text is the same in every
    schema (table names are unqualified; the search_path picks the tenant's)."""
    sql, params = endpoints_subscribed(type=type).values_list("id", flat=True).query.sql_with_params()
    return sql, tuple(params)


def _event_new(*, type: str, data: dict[str, Any]) -> Event:
    """An unsaved event; fails here, in the caller's transaction, rather than in a worker if data is not JSON."""
    json.dumps(data, cls=DjangoJSONEncoder)
    return Event(type=type, data=data)


def _deliveries_create(*, events: list[Event], endpoint_ids: list[str]) -> None:
    first_delay = retry_schedule()[0]
    deliveries = [
        WebhookDelivery(
            event=event,
            endpoint_id=endpoint_id,
            next_attempt_at=event.created_at + timedelta(seconds=first_delay),
            enqueued_at=event.created_at,
        )
        for event in events
        for endpoint_id in endpoint_ids
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        drain_on_commit([d.id for d in deliveries], countdown=first_delay)
