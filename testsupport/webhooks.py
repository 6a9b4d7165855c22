"""What a worker kill may do to webhooks: send again a delivery it held claimed, and nothing else."""

from __future__ import annotations

from collections import Counter

from webhooks.models import DeliveryStatus, WebhookDelivery


def claimed_delivery_ids() -> set[str]:
    """The deliveries of the current schema claimed by a drain (`sending`). Read right after every worker was
    killed, these are the claims the dead workers held: the only deliveries that kill can send twice (the
    receiver answered, the outcome was not yet recorded), once the lease runs out and a new drain takes them."""
    ids = WebhookDelivery.objects.filter(status=DeliveryStatus.SENDING).values_list("id", flat=True)
    return {str(pk) for pk in ids}


def assert_resends_bounded(arrivals: Counter[str], held: Counter[str]) -> int:
    """Every extra copy of a delivery was caused by a kill: a delivery (by webhook-id) arrived at most once more
    than once for each kill that caught it claimed (`held`, counted with claimed_delivery_ids after each kill).
    Returns the number of duplicates."""
    excess = {delivery: n - 1 - held[delivery] for delivery, n in arrivals.items() if n - 1 > held[delivery]}
    assert not excess, f"sent again more often than kills caught them claimed (delivery: extra copies): {excess}"
    return sum(n - 1 for n in arrivals.values())
