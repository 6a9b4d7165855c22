"""Claim links that reach their claim-by date unclaimed: the `expired` state, and what becomes of their value.

A reward whose claim link passed `claim_expires_at` while the recipient still held it (delivered, opened, or
delivery_failed: never revealed on the claim page) becomes `expired`, once, by the beat sweep
(orders.tasks.rewards_expire_task). What happens to its money follows the cancel policy's rule that a disclosed
code is spent (orders.policy), and the program's `on_expiry`:

  code state   on_expiry=release                                       on_expiry=keep
  none         the hold is released / the charge refunded (nothing was bought)   same
  undisclosed  the supplier voids the code first, then the charge is refunded     the code stays valid, money spent
  disclosed    nothing moves: the code left the vault (an API or portal reveal)   same
  choosing     left for the next sweep (the chosen product's code is being issued right now)

A supplier that refuses the void leaves the code live and the money spent (outcome `spent`); a supplier that
cannot be reached leaves the reward as it was for the next sweep. Each expiry writes one RewardExpiry row (the
breakage record the Funds page and reports read) in the same transaction as the state change and the
ledger posting, whose reference `reward:<id>` is the one a cancel would use: the ledger returns a reward's
money at most once, whoever asks.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from programs.models import ExpiryPolicy

from .handoff import VoidRefused, VoidUnavailable
from .lifecycle import order_refresh_status, reward_code_void_locked, reward_funds_return, reward_transition
from .models import DeliveryMethod, ExpiryOutcome, Reward, RewardExpiry, RewardStatus
from .policy import CodeState, code_state
from .selectors import reward_lock

logger = logging.getLogger(__name__)

# States in which the recipient still holds an unclaimed link. `redeemed` is claimed; the rest are final.
EXPIRABLE = (RewardStatus.DELIVERED, RewardStatus.DELIVERY_FAILED, RewardStatus.OPENED)
# Rewards read per sweep query; each is then expired in its own short transaction (a supplier void may be
# part of it, and the ledger's account rows must not stay locked across many of those).
EXPIRE_BATCH = 500


def rewards_expiring(*, now: datetime, limit: int = EXPIRE_BATCH) -> list[Any]:
    """Ids of rewards whose claim link is past its date and still unclaimed (one indexed query)."""
    return list(
        Reward.objects.filter(status__in=EXPIRABLE, claim_expires_at__lte=now)
        .exclude(delivery_method=DeliveryMethod.SHIPMENT)
        .order_by("claim_expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def rewards_next_expiry() -> datetime | None:
    """When rewards_expiring() next finds a reward in this schema (None: no claim link that can still expire)."""
    expirable = Reward.objects.filter(status__in=EXPIRABLE, claim_expires_at__isnull=False)
    at: datetime | None = expirable.exclude(delivery_method=DeliveryMethod.SHIPMENT).aggregate(
        at=Min("claim_expires_at")
    )["at"]
    return at


def _outcome(reward: Reward) -> tuple[str, str] | None:
    """(outcome, note) for a locked, expiring reward, after any void; None to leave it for the next sweep."""
    state = code_state(reward)
    program = reward.order.program
    keep = program is not None and program.on_expiry == ExpiryPolicy.KEEP
    if state == CodeState.CHOOSING:
        return None
    if state == CodeState.NONE:
        return ExpiryOutcome.RELEASED, "claim link expired unclaimed; no code was issued, funds returned"
    if state == CodeState.DISCLOSED:
        return ExpiryOutcome.SPENT, "claim link expired; the code had been disclosed, so it is spent"
    if keep:
        return ExpiryOutcome.KEPT, "claim link expired; the program keeps expired codes valid"
    try:
        reward_code_void_locked(reward)
    except VoidUnavailable as exc:
        logger.warning(
            "expiry: supplier unreachable for the void; retried next sweep",
            extra={"event": "reward.expiry_deferred", "reward_id": str(reward.id), "error": str(exc)[:200]},
        )
        return None
    except VoidRefused:
        return ExpiryOutcome.SPENT, "claim link expired; the supplier cannot void the code, so it is spent"
    return ExpiryOutcome.RELEASED, "claim link expired unclaimed; code voided, funds returned"


def reward_expire(*, reward_id: Any, now: datetime | None = None) -> RewardExpiry | None:
    """Expire one reward if its claim link is past its date and unclaimed; None if there is nothing to do.

    Idempotent: the state is checked under the reward's row lock, so a second sweep (or a concurrent one)
    finds it `expired` and does nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if (
            reward is None
            or reward.status not in EXPIRABLE
            or reward.claim_expires_at is None
            or reward.claim_expires_at > now
            or reward.delivery_method == DeliveryMethod.SHIPMENT
        ):
            return None
        decided = _outcome(reward)
        if decided is None:
            return None
        outcome, note = decided
        if outcome == ExpiryOutcome.RELEASED:
            reward_funds_return(reward=reward, description=f"Unclaimed reward expired: reward:{reward.id}")
        expiry = RewardExpiry.objects.create(
            reward=reward, outcome=outcome, amount=reward.charge_amount, currency=reward.order.currency, note=note
        )
        reward_transition(reward=reward, to=RewardStatus.EXPIRED, note=note)
        order_refresh_status(order=reward.order)
    logger.info("reward expired", extra={"event": "reward.expired", "reward_id": str(reward.id), "outcome": outcome})
    return expiry


def rewards_expire(*, now: datetime | None = None) -> int:
    """Expire every reward in the current schema whose claim link is past its date; returns how many expired."""
    now = now or timezone.now()
    expired = 0
    seen: set[Any] = set()
    while True:
        batch = [reward_id for reward_id in rewards_expiring(now=now) if reward_id not in seen]
        if not batch:
            return expired
        seen.update(batch)  # a reward left for the next sweep (a void deferred) is not asked again in this one
        expired += sum(reward_expire(reward_id=reward_id, now=now) is not None for reward_id in batch)
