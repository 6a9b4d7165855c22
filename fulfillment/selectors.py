"""Reads of fulfilment records: shipments and their tracking events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFoundError

from .models import Shipment


def shipment_get(*, shipment_id: Any) -> Shipment:
    shipment = Shipment.objects.prefetch_related("events").select_related("reward").filter(pk=shipment_id).first()
    if shipment is None:
        raise NotFoundError("No such shipment.")
    return shipment


def shipment_list(*, status: str | None = None, carrier: str | None = None) -> QuerySet[Shipment]:
    """The tenant's shipments, newest first, with their events (one query for the page, one for events)."""
    qs = Shipment.objects.prefetch_related("events")
    if status:
        qs = qs.filter(status=status)
    if carrier:
        qs = qs.filter(carrier__iexact=carrier.strip())
    return qs


def shipment_render(shipment: Shipment) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": str(shipment.id),
        "reward_id": str(shipment.reward_id),
        "status": shipment.status,
        "carrier": shipment.carrier,
        "shipping_method": {"id": str(shipment.shipping_method_id), "name": shipment.method_name},
        "tracking_number": shipment.tracking_number or None,
        "address": shipment.address,
        "events": [
            {
                "status": event.status,
                "description": event.description,
                "location": event.location or None,
                "occurred_at": iso(event.occurred_at),
            }
            for event in shipment.events.all()
        ],
        "created_at": iso(shipment.created_at),
    }
