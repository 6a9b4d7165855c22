"""Erasing a person from fulfilment: the addresses their gifts were shipped to (the country stays, for reports
and customs history); the shipment, its carrier, tracking and state stay."""

from __future__ import annotations

from orders.erasure import person_rewards
from people.erasure import ERASED, Erasure

from .models import Shipment


def shipments_scrub(erasure: Erasure) -> None:
    for shipment in Shipment.objects.filter(reward__in=person_rewards(erasure)).only("id", "address"):
        country = (shipment.address or {}).get("country", "")
        Shipment.objects.filter(pk=shipment.pk).update(address={"name": ERASED, "country": country})
