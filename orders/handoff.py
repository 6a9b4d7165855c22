"""What orders hands on to fulfilment without importing it: due rewards by task name, and the functions
fulfilment registers at start-up (fulfillment.apps) for shipments and for voiding a supplier's code.

Fulfilment imports orders, never the reverse (import-linter holds the layers). Each registered function is
called inside the orders transaction that needs it, so what it writes commits or rolls back with the order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db import models

from core.publish import task_publish

from .models import Reward, RewardStatus

if TYPE_CHECKING:
    from catalog.models import ShippingMethod

FULFIL_TASK = "fulfillment.tasks.reward_fulfil_task"


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

    Never raises: the order is committed, so a broker outage must not turn its 201 into an error. What is
    not published here, the fulfilment sweeper re-publishes (pending rewards older than the lease); after
    the first refusal the rest are left to it too.
    """
    for reward in rewards:
        if reward.status == RewardStatus.PENDING and not task_publish(
            FULFIL_TASK, args=[str(reward.id)], event="reward.publish_failed", log_extra={"reward_id": str(reward.id)}
        ):
            return
