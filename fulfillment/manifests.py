"""The daily hand-off to a fulfilment partner: a CSV manifest of the shipments queued for one carrier.

A spreadsheet opens the manifest, so every cell that a spreadsheet would read as a formula (one starting
with = + - @, a tab or a carriage return) gets a leading apostrophe: a recipient named
`=HYPERLINK("http://x")` arrives as text, not as a link (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef
from django.utils import timezone

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
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MANIFEST_CHUNK = 2000  # rows fetched per round trip: ~2 MB of model instances


def csv_safe(value: object) -> str:
    """The cell as text a spreadsheet will not evaluate."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day in the installation's TIME_ZONE (UTC unless configured otherwise)."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def manifest_shipments(*, day: date, carrier: str):
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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    count = 0
    for shipment in manifest_shipments(day=day, carrier=carrier).iterator(chunk_size=MANIFEST_CHUNK):
        reward = shipment.reward
        address = shipment.address or {}
        snapshot = reward.product_snapshot or {}
        product = " ".join(part for part in (snapshot.get("brand"), snapshot.get("name")) if part)
        writer.writerow(
            [
                csv_safe(value)
                for value in (
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
            ]
        )
        count += 1
    return buffer.getvalue(), count
