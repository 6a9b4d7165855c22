"""The beat sweeper: publish a drain wherever a due delivery was never picked up or a claim outlived its lease.

A lost publish (the broker was down at commit) or a killed worker leaves deliveries that no drain will
take; the sweeper finds them in every tenant schema and publishes a drain for them. The same webhook-id is
then sent again, and receivers deduplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.db import connection
from tenants.due import WEBHOOKS, for_each_due_tenant

from .models import DeliveryStatus, WebhookDelivery
from .publish import drain_on_commit

SWEEP_BATCH = 500  # due deliveries marked per schema per sweep (one drain is published for them)


def webhook_deliveries_sweep() -> int:
    """Publish due deliveries whose task was lost, in every tenant schema (live and sandbox twins) with unfinished
    deliveries due (tenants.due).

    Suspended tenants too: their events already happened, and are owed to their receivers.
    """
    published = 0
    for _tenant in for_each_due_tenant(WEBHOOKS, next_due=webhook_deliveries_next_due, active_only=False):
        published += webhook_deliveries_sweep_schema()
    return published


def webhook_deliveries_next_due() -> datetime | None:
    """When webhook_deliveries_sweep_schema() next finds something in this schema (None: nothing unfinished): a
    pending delivery once it is due and nobody published for it in WEBHOOK_REQUEUE_AFTER_SECONDS, a sending one
    when its lease ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT LEAST(min(GREATEST(next_attempt_at, enqueued_at + make_interval(secs => %s))) "
            "FILTER (WHERE status = %s), "
            f"min(locked_until) FILTER (WHERE status = %s)) FROM {WebhookDelivery._meta.db_table} "
            "WHERE status IN (%s, %s)",
            [settings.WEBHOOK_REQUEUE_AFTER_SECONDS, DeliveryStatus.PENDING, DeliveryStatus.SENDING,
             DeliveryStatus.PENDING, DeliveryStatus.SENDING],
        )  # fmt: skip
        row = cursor.fetchone()
    return row[0] if row else None


def webhook_deliveries_sweep_schema(*, now: datetime | None = None) -> int:
    """In the current schema: publish a drain if a due delivery was not picked up, or a claim's lease ran out.

    A pending delivery counts once nobody has published for it in WEBHOOK_REQUEUE_AFTER_SECONDS; a `sending`
    one as soon as its lease has expired (its worker died). Returns how many such deliveries there were.
    """
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale))
                | Q(status=DeliveryStatus.SENDING, locked_until__lte=now)
            )
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
            drain_on_commit(ids, dedupe=False)
    return len(ids)
