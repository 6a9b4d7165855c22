"""Erasing a reward's recipient from fulfilment (a person's erasure or the retention period running out): the
address their gift was shipped to (the country stays, for reports and customs history); the shipment, its carrier,
tracking and state stay."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from core.bulk import rows_update
from people.erasure import ERASED

from .models import Shipment


def shipments_scrub(reward_ids: list[UUID]) -> dict[str, tuple[str, ...]]:
    """orders.erasure: blank these rewards' shipping addresses but the country; {shipment id: the strings it held}
    (so the shipment's stored events are scrubbed of them). One read and one write however many shipments."""
    held: dict[str, tuple[str, ...]] = {}
    blanked: dict[UUID, dict[str, Any]] = {}
    for pk, address in Shipment.objects.filter(reward_id__in=reward_ids).order_by().values_list("pk", "address"):
        address = address or {}
        held[str(pk)] = tuple(str(v) for k, v in address.items() if k != "country" and v and v != ERASED)
        blanked[pk] = {"address": {"name": ERASED, "country": address.get("country", "")}}
    rows_update(Shipment, blanked)
    return held
