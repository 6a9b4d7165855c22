"""The daily hand-off to a fulfilment partner: a CSV manifest of the shipments queued for one carrier.

A spreadsheet opens the manifest, so it is written by core.csv_export: a recipient named
`=HYPERLINK("http://x")` arrives as text, not as a link (OWASP "CSV injection").
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from core.csv_export import csv_text
from core.errors import ApplicationError

from .models import Shipment, ShipmentEvent, ShipmentStatus

MANIFEST_COLUMNS = (
    "shipment_id",
    "reward_id",
    "order_id",
    "external_id",
    "carrier",
    "method",
    "recipient_name",
    "line1",
    "line2",
    "city",
    "state",
    "postal_code",
    "country",
    "product",
    "quantity",
    "created_at",
)
MANIFEST_CHUNK = 2000  # rows fetched per round trip: ~2 MB of model instances


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day in the installation's TIME_ZONE (UTC unless configured otherwise)."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def manifest_shipments(*, day: date, carrier: str) -> QuerySet[Shipment]:
    """Shipments still `submitted` whose hand-off to fulfilment happened on `day`, for `carrier`."""
    start, end = _day_bounds(day)
    submitted_that_day = ShipmentEvent.objects.filter(
        shipment=OuterRef("pk"), status=ShipmentStatus.SUBMITTED, occurred_at__gte=start, occurred_at__lt=end
    )
    return (
        Shipment.objects.filter(status=ShipmentStatus.SUBMITTED, carrier__iexact=carrier.strip())
        .filter(Exists(submitted_that_day))
        .select_related("reward", "reward__order")
        .order_by("created_at", "id")
    )


def shipment_manifest(*, day: date, carrier: str) -> tuple[str, int]:
    """(CSV text, number of shipments) of the current tenant's shipments queued for `carrier` on `day`."""
    if not carrier or not carrier.strip():
        raise ApplicationError(
            "Name the carrier whose manifest you want.", code="validation_error", errors={"carrier": ["Required."]}
        )
    rows = []
    for shipment in manifest_shipments(day=day, carrier=carrier).iterator(chunk_size=MANIFEST_CHUNK):
        reward = shipment.reward
        address = shipment.address or {}
        snapshot = reward.product_snapshot or {}
        product = " ".join(part for part in (snapshot.get("brand"), snapshot.get("name")) if part)
        rows.append(
            (
                shipment.id,
                reward.id,
                reward.order_id,
                reward.order.external_id or "",
                shipment.carrier,
                shipment.method_name,
                address.get("name") or reward.recipient_name,
                address.get("line1"),
                address.get("line2"),
                address.get("city"),
                address.get("state"),
                address.get("postal_code"),
                address.get("country"),
                product,
                1,
                shipment.created_at.isoformat().replace("+00:00", "Z"),
            )
        )
    return csv_text(MANIFEST_COLUMNS, rows), len(rows)
