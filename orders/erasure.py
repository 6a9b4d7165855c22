"""Erasing a person from orders: the recipient fields their rewards copied (name, email, phone, message) and
the timeline notes that may quote them. Amounts, products, holds and the ledger stay as they were."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from people.erasure import ERASED, Erasure

from .models import Reward, RewardEvent


def person_rewards(erasure: Erasure) -> QuerySet[Reward]:
    """The person's rewards: those that named them, and those sent inline to their email address."""
    match = Q(person_id=erasure.person.pk)
    if erasure.person.email:
        match |= Q(recipient_email=erasure.person.email)
    return Reward.objects.filter(match)


def rewards_scrub(erasure: Erasure) -> None:
    rewards = person_rewards(erasure)
    reward_ids = list(rewards.values_list("id", flat=True))
    if not reward_ids:
        return
    Reward.objects.filter(id__in=reward_ids).update(
        recipient_name=ERASED, recipient_email="", recipient_phone="", message=""
    )
    RewardEvent.objects.filter(reward_id__in=reward_ids).exclude(note="").update(note="")
