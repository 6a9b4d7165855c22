"""What orders hands on to fulfilment without importing it: due rewards by task name (a batch drain for most,
a task per reward for the rest), and the functions
fulfilment registers at start-up (fulfillment.apps) for shipments and for voiding a supplier's code.

Fulfilment imports orders, never the reverse (import-linter holds the layers). Each registered function is
called inside the orders transaction that needs it, so what it writes commits or rolls back with the order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db import models

from core.db import connection
from core.publish import task_publish
from core.redis import get_redis

from .models import DeliveryMethod, Reward, RewardStatus

if TYPE_CHECKING:
    from catalog.models import ShippingMethod

logger = logging.getLogger(__name__)

FULFIL_TASK = "fulfillment.tasks.reward_fulfil_task"
FULFIL_DRAIN_TASK = "fulfillment.tasks.fulfil_drain_task"
# Delivered in batches by the fulfilment drain; SMS and shipments keep one task per reward (their providers and
# partners take one at a time anyway).
DRAIN_METHODS = (DeliveryMethod.EMAIL, DeliveryMethod.API, DeliveryMethod.LINK)
# How long the flag of a published, not yet started drain lives: it expires in case the task is lost.
DRAIN_FLAG_SECONDS = 5


class VoidRefused(Exception):
    """The supplier answered that it cannot void this code (disclosed, redeemed at the merchant, no endpoint)."""


class VoidUnavailable(Exception):
    """The supplier could not be asked now (timeout, 5xx): nothing changed; cancel may be tried again."""


class _Dispatchable(Protocol):
    """A Reward, or the BatchReward that bulk batches write."""

    @property
    def id(self) -> uuid.UUID | str: ...  # a BatchReward's is UUID text

    @property
    def status(self) -> str: ...

    @property
    def delivery_method(self) -> str: ...


@dataclass(frozen=True)
class ShipmentHooks:
    """How orders writes and cancels the shipments of physical rewards (fulfillment.shipments fills it in)."""

    # An unsaved shipment for a reward, written with the order in one statement (core.bulk.insert_together).
    new: Callable[..., models.Model]  # (reward=, shipping_method=, address=)
    # Bulk batches: rows of (shipment id, reward id, shipping method, address) written with one COPY.
    copy: Callable[[list[tuple[str, str, ShippingMethod, dict[str, str] | None]]], None]
    # The reward (row locked) is being canceled: its shipment, if still pending, is canceled with it.
    cancel: Callable[[Reward], None]


_code_voider: Callable[[Reward], None] | None = None
_shipment_hooks: ShipmentHooks | None = None
# Called, in the reward's transaction, when a reward's money goes back to the tenant (failed, canceled, expired,
# refunded): points registers one that gives a redemption's points back (points.redemptions).
_funds_returned_hooks: list[Callable[[Reward], None]] = []


def reward_funds_returned_register(hook: Callable[[Reward], None]) -> None:
    if hook not in _funds_returned_hooks:
        _funds_returned_hooks.append(hook)


def reward_funds_returned(reward: Reward) -> None:
    for hook in _funds_returned_hooks:
        hook(reward)


def code_voider_register(voider: Callable[[Reward], None]) -> None:
    """The function that asks a reward's supplier to void its code: returns once the void is confirmed,
    raises VoidRefused or VoidUnavailable otherwise."""
    global _code_voider
    _code_voider = voider


def code_voider() -> Callable[[Reward], None] | None:
    return _code_voider


def shipment_hooks_register(hooks: ShipmentHooks) -> None:
    global _shipment_hooks
    _shipment_hooks = hooks


def shipment_hooks() -> ShipmentHooks | None:
    return _shipment_hooks


def shipment_hooks_required() -> ShipmentHooks:
    """The shipment hooks, for a physical order (an order cannot ship without the fulfillment app)."""
    if _shipment_hooks is None:
        raise RuntimeError("physical rewards need the fulfillment app installed (it registers shipment hooks)")
    return _shipment_hooks


def rewards_dispatch(rewards: Iterable[_Dispatchable]) -> None:
    """After commit: hand due rewards to the fulfilment workers (scheduled ones wait for beat).

    Rewards the drain handles wake one drain for the schema (unless one is already waiting to start: it will
    claim them too); the others get a task each. Never raises: the order is committed, so a broker outage must
    not turn its 201 into an error. What is not published here, the fulfilment sweeper re-publishes (pending
    rewards older than the lease); after the first refusal the rest are left to it too.
    """
    due = [reward for reward in rewards if reward.status == RewardStatus.PENDING]
    if any(reward.delivery_method in DRAIN_METHODS for reward in due) and not fulfil_drain_publish():
        return
    for reward in due:
        if reward.delivery_method not in DRAIN_METHODS and not task_publish(
            FULFIL_TASK, args=[str(reward.id)], event="reward.publish_failed", log_extra={"reward_id": str(reward.id)}
        ):
            return


def _drain_flag() -> str:
    return f"fulfil:drain:{connection.settings_dict['NAME']}:{connection.schema_name}"


def fulfil_drain_publish(*, countdown: float | None = None) -> bool:
    """Publish a fulfilment drain for the current schema unless one is already waiting to start; False only when
    the broker refused it. At most one waiting drain per schema: a tenant's thousands of commits queue one task,
    and another tenant's drain waits behind at most one of theirs (plus those running)."""
    try:
        if not get_redis().set(_drain_flag(), b"1", nx=True, ex=DRAIN_FLAG_SECONDS):
            return True  # one is waiting; it claims after clearing the flag, so it sees these rewards
    except Exception:
        logger.warning("drain flag unavailable; publishing", extra={"event": "fulfil.drain_flag_unavailable"})
    published = task_publish(FULFIL_DRAIN_TASK, event="reward.publish_failed", countdown=countdown)
    if not published:
        fulfil_drain_flag_clear()
    return published


def fulfil_drain_flag_clear() -> None:
    """A drain starting (or its publish failed): from now on a commit in this schema publishes a new drain."""
    try:
        get_redis().delete(_drain_flag())
    except Exception:
        logger.warning("drain flag not cleared", extra={"event": "fulfil.drain_flag_unavailable"})  # it expires
