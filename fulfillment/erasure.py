"""Erasing a reward's recipient from fulfilment (a person's erasure or the retention period running out): the
address their gift was shipped to (the country stays, for reports and customs history); the shipment, its carrier,
tracking and state stay."""

from __future__ import annotations

from uuid import UUID

from people.erasure import ERASED

from .models import Shipment


def shipments_scrub(reward_ids: list[UUID]) -> dict[str, tuple[str, ...]]:
    """orders.erasure: blank these rewards' shipping addresses but the country; {shipment id: the strings it held}
    (so the shipment's stored events are scrubbed of them)."""
    held: dict[str, tuple[str, ...]] = {}
    for shipment in Shipment.objects.filter(reward_id__in=reward_ids).only("id", "address"):
        address = shipment.address or {}
        held[str(shipment.pk)] = tuple(str(v) for k, v in address.items() if k != "country" and v and v != ERASED)
        Shipment.objects.filter(pk=shipment.pk).update(address={"name": ERASED, "country": address.get("country", "")})
    return held
