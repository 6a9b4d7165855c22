"""A person's rewards for their data export, and erasing a person from orders: the recipient fields their
rewards copied (name, email, phone, message) and
the timeline notes that may quote them. Amounts, products, holds and the ledger stay as they were."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from people.erasure import ERASED, Erasure
from people.models import Person

from .models import Reward, RewardEvent
from .selectors import reward_render


def person_rewards(erasure: Erasure) -> QuerySet[Reward]:
    """The person's rewards: those that named them, and those sent inline to their email address."""
    match = Q(person_id=erasure.person.pk)
    if erasure.person.email:
        match |= Q(recipient_email=erasure.person.email)
    return Reward.objects.filter(match)


def rewards_export(person: Person) -> list[dict[str, Any]]:
    """The person's rewards as the API shows them (codes masked, no claim link) with their timelines: when each
    was sent, delivered, opened on the claim page, redeemed."""
    rewards = Reward.objects.filter(person=person).select_related("order", "shipment").prefetch_related("events")
    return [
        {**reward_render(reward, bearer=False), "timeline": [
            {"status": event.to_status, "at": event.created_at.isoformat().replace("+00:00", "Z")}
            for event in reward.events.all()
        ]}
        for reward in rewards.order_by("created_at")
    ]  # fmt: skip


def rewards_scrub(erasure: Erasure) -> None:
    rewards = person_rewards(erasure)
    reward_ids = list(rewards.values_list("id", flat=True))
    if not reward_ids:
        return
    Reward.objects.filter(id__in=reward_ids).update(
        recipient_name=ERASED, recipient_email="", recipient_phone="", message=""
    )
    RewardEvent.objects.filter(reward_id__in=reward_ids).exclude(note="").update(note="")


RETENTION_BATCH = 5000  # rewards anonymised per statement: one UPDATE of ~5 MB of rows


def rewards_anonymise_delivered(*, now: datetime | None = None) -> int:
    """Anonymise the recipient of every reward delivered more than the tenant's retention period ago (name,
    email, phone, message); amounts, products and states stay. Returns how many were changed."""
    from people.selectors import privacy_settings_get

    days = privacy_settings_get().recipient_retention_days
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    changed = 0
    while True:
        batch = list(
            Reward.objects.filter(delivered_at__lt=cutoff)
            .exclude(recipient_name=ERASED)
            .values_list("pk", flat=True)[:RETENTION_BATCH]
        )
        if not batch:
            return changed
        changed += Reward.objects.filter(pk__in=batch).update(
            recipient_name=ERASED, recipient_email="", recipient_phone="", message=""
        )
