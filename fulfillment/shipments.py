"""Physical shipments: hand-off to the fulfilment partner and tracking updates (state machine in models)."""

from __future__ import annotations

from django.utils import timezone

from orders.models import Reward

from .models import Shipment, ShipmentEvent, ShipmentStatus


def shipment_submit(*, reward: Reward) -> Shipment | None:
    """Queue the shipment for the partner's next manifest (idempotent: only a pending shipment moves)."""
    shipment = Shipment.objects.select_for_update().filter(reward=reward).first()
    if shipment is None or shipment.status != ShipmentStatus.PENDING:
        return shipment
    shipment.status = ShipmentStatus.SUBMITTED
    shipment.updated_at = timezone.now()
    shipment.save(update_fields=["status", "updated_at"])
    ShipmentEvent.objects.create(shipment=shipment, status=ShipmentStatus.SUBMITTED, description="Sent to fulfilment")
    return shipment
