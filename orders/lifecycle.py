"""A reward's life after its order is written: the state machine, the order's derived status, capture and
failure of its funds, and cancellation as orders.policy allows (voiding an issued code at the supplier).

Lock order everywhere: rewards (by pk), then their order.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.errors import ApplicationError, NotFoundError
from core.metrics import REWARD_STATE_CHANGES
from funds.models import HoldStatus
from funds.services import funds_hold_capture, funds_hold_release, funds_refund

from .handoff import VoidRefused, VoidUnavailable, code_voider, reward_funds_returned, shipment_hooks
from .models import (
    REWARD_DONE_STATES,
    REWARD_TRANSITIONS,
    ApprovalStatus,
    Order,
    OrderStatus,
    Reward,
    RewardEvent,
    RewardStatus,
)
from .policy import CancelAction, CancelRule, cancel_rule
from .selectors import reward_lock, rewards_for_update

logger = logging.getLogger(__name__)


def reward_transition(*, reward: Reward, to: str, note: str = "") -> Reward:
    """The one place a reward changes state. Illegal moves raise; an unchanged state is a no-op."""
    if reward.status == to:
        return reward
    if to not in REWARD_TRANSITIONS.get(reward.status, set()):
        raise ApplicationError(
            f"A {reward.status} reward cannot become {to}.", code="invalid_state_transition", status=409
        )
    previous = reward.status
    reward.status = to
    reward.updated_at = timezone.now()
    fields = ["status", "updated_at"]
    if to == RewardStatus.DELIVERED and reward.delivered_at is None:
        reward.delivered_at = reward.updated_at
        fields.append("delivered_at")
    if to in (RewardStatus.OPENED, RewardStatus.REDEEMED) and reward.opened_at is None:
        reward.opened_at = reward.updated_at  # seen: the funnel's `opened` keeps it whatever comes next
        fields.append("opened_at")
    reward.save(update_fields=fields)
    RewardEvent.objects.create(reward=reward, from_status=previous, to_status=to, note=note[:300])
    transaction.on_commit(REWARD_STATE_CHANGES.labels(to).inc)  # a rolled-back move is not counted
    event_types: dict[str, str] = {
        RewardStatus.DELIVERED: "reward.delivered",
        RewardStatus.DELIVERY_FAILED: "reward.delivery_failed",
        RewardStatus.OPENED: "reward.opened",
        RewardStatus.REDEEMED: "reward.redeemed",
        RewardStatus.CANCELED: "reward.canceled",
        RewardStatus.FAILED: "reward.failed",
        RewardStatus.EXPIRED: "reward.expired",
    }
    event_type = event_types.get(to)
    if event_type and event_type != "reward.failed":
        from orders.selectors import reward_render
        from webhooks.events import event_emit

        event_emit(type=event_type, data=reward_render(reward))
    return reward


# The order's status follows from which kinds of reward state it has, not from how many of each: five EXISTS
# questions, each an index seek on (order, status) (reward_order_status), so a delivery costs the same in an order
# of 1 reward or of 100,000 (counting them all made an order O(n²)). Asked in a statement of its own after the
# order row is locked: a statement that waited for the lock would answer from the snapshot it took before waiting,
# and two batches finishing one order at once would each see the other's rewards still processing.
_LOCK_SQL = "SELECT status, approval_status FROM {order} WHERE id = %(order)s FOR NO KEY UPDATE"
_STATES_SQL = """
SELECT
    EXISTS (SELECT 1 FROM {reward} r WHERE r.order_id = %(order)s AND r.status = ANY(%(open)s)),
    EXISTS (SELECT 1 FROM {reward} r WHERE r.order_id = %(order)s AND r.status = 'processing'),
    EXISTS (SELECT 1 FROM {reward} r WHERE r.order_id = %(order)s AND r.status = ANY(%(done)s)),
    EXISTS (SELECT 1 FROM {reward} r WHERE r.order_id = %(order)s AND r.status = 'failed'),
    EXISTS (SELECT 1 FROM {reward} r WHERE r.order_id = %(order)s AND r.status = 'awaiting_approval')
"""
_OPEN_STATES: list[str] = [RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.PROCESSING]


def order_status_derive(
    *, open: bool, processing: bool, done: bool, failed: bool, awaiting: bool = False
) -> OrderStatus:
    """The order's status from which reward states it has (canceled rewards do not count, unless all are)."""
    if awaiting and not (open or done or failed):
        return OrderStatus.PENDING_APPROVAL  # every active reward waits for the order's approval
    open = open or awaiting
    if not (open or done or failed):
        return OrderStatus.CANCELED
    if failed and not (open or done):
        return OrderStatus.FAILED
    if not open:
        return OrderStatus.COMPLETED  # every active reward delivered (or later) or failed
    if not (processing or done or failed):
        return OrderStatus.PENDING  # every active reward pending or scheduled
    return OrderStatus.PROCESSING


def order_refresh_status(*, order: Order) -> Order:
    """Derive the order's status from its rewards and announce terminal outcomes.

    Locks the order row first: two rewards of one order finishing at once would otherwise each read the
    other as still processing, and the order would never complete. (Lock order everywhere: rewards, then
    their order.)
    """
    params: dict[str, Any] = {"open": _OPEN_STATES, "done": sorted(REWARD_DONE_STATES), "order": order.pk}
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL.format(order=Order._meta.db_table), params)
        order.status, order.approval_status = cursor.fetchone()
        cursor.execute(_STATES_SQL.format(reward=Reward._meta.db_table), params)
        has_open, has_processing, has_done, has_failed, has_awaiting = cursor.fetchone()
    new = order_status_derive(
        open=has_open, processing=has_processing, done=has_done, failed=has_failed, awaiting=has_awaiting
    )
    if new != order.status:
        order.status = new
        order.updated_at = timezone.now()
        fields = ["status", "updated_at"]
        if new == OrderStatus.CANCELED and order.approval_status == ApprovalStatus.PENDING:
            # Canceled while waiting (the creator withdrew it): nothing is left to approve.
            order.approval_status = ApprovalStatus.REJECTED
            order.approval_reason = "withdrawn: canceled before approval"
            order.approval_decided_at = order.updated_at
            fields += ["approval_status", "approval_reason", "approval_decided_at"]
        order.save(update_fields=fields)
        event_type = {
            OrderStatus.COMPLETED: "order.completed",
            OrderStatus.FAILED: "order.failed",
            OrderStatus.CANCELED: "order.canceled",
        }.get(new)
        if event_type:
            from orders.selectors import order_render
            from webhooks.events import event_emit

            event_emit(type=event_type, data=order_render(order))
    return order


def reward_capture(*, reward: Reward) -> None:
    """Fulfilment succeeded: capture the reward's hold (idempotent)."""
    if reward.hold is not None:
        funds_hold_capture(hold=reward.hold)


def reward_fail(*, reward: Reward, reason: str) -> Reward:
    """Non-retryable failure: release exactly this reward's hold and mark it failed."""
    if reward.hold is not None:
        funds_hold_release(hold=reward.hold)
        reward_funds_returned(reward)
    reward.failure_reason = reason[:300]
    reward.save(update_fields=["failure_reason"])
    reward_transition(reward=reward, to=RewardStatus.FAILED, note=reason)
    order_refresh_status(order=reward.order)
    return reward


# --- cancellation ---------------------------------------------------------------------------------------


def reward_code_void_locked(reward: Reward) -> None:
    """Ask the supplier to void the locked reward's code (no reveal can slip in meanwhile) and erase it here.

    Raises VoidRefused or VoidUnavailable (nothing changed) as the supplier answers; VoidRefused when no
    supplier voider is registered."""
    voider = code_voider()
    if voider is None:
        raise VoidRefused("no supplier can void codes here")
    voider(reward)
    reward.code_voided_at = timezone.now()
    reward.code_encrypted = ""
    reward.pin_encrypted = ""
    reward.save(update_fields=["code_voided_at", "code_encrypted", "pin_encrypted"])
    logger.info("reward code voided", extra={"event": "reward.code_voided", "reward_id": str(reward.id)})


def reward_funds_return(*, reward: Reward, description: str = "") -> None:
    """Give the reward's money back to `cash`: release a pending hold, or refund a captured one (once per reward
    in the ledger, whoever asks: a cancel and an expiry racing each other return it once)."""
    hold = reward.hold
    if hold is not None and hold.status == HoldStatus.PENDING:
        funds_hold_release(hold=hold)
        reward_funds_returned(reward)
    elif hold is not None and hold.status == HoldStatus.CAPTURED:
        reference = f"reward:{reward.id}"
        funds_refund(currency=hold.currency, amount=hold.amount, reference=reference, description=description)
        reward_funds_returned(reward)


def _void_code(reward: Reward, rule: CancelRule) -> None:
    try:
        reward_code_void_locked(reward)
    except VoidRefused as exc:
        raise ApplicationError(
            f"This reward cannot be canceled: {rule.reason} ({exc}).", code=rule.code, status=409
        ) from None
    except VoidUnavailable as exc:
        raise ApplicationError(
            f"The supplier could not be reached to void the code; nothing changed, try again later ({exc}).",
            code="supplier_unavailable",
            status=503,
            retryable=True,
        ) from None


def reward_cancel_locked(reward: Reward, *, reason: str, void: bool = True) -> CancelRule:
    """Cancel one locked reward as orders.policy says; release or refund its funds. Returns the rule applied.

    A refusal is returned (action REFUSE), not raised; a refused void raises. With `void=False` (an order's
    cancel) a reward whose code would need a void is left alone and reported as refused.
    """
    rule = cancel_rule(reward)
    if rule.action == CancelAction.REFUSE:
        return rule
    if rule.action == CancelAction.VOID_THEN_REFUND and not void:
        return CancelRule(CancelAction.REFUSE, rule.code, "its code was issued: cancel the reward itself")
    if rule.action == CancelAction.VOID_THEN_REFUND:
        _void_code(reward, rule)
    reward_funds_return(reward=reward)
    hooks = shipment_hooks()
    if hooks is not None:
        hooks.cancel(reward)  # a pending shipment is canceled with its reward, in this transaction
    reward_transition(reward=reward, to=RewardStatus.CANCELED, note=reason)
    return rule


def _refusal(reward: Reward, rule: CancelRule) -> ApplicationError:
    return ApplicationError(
        f"This {reward.status} reward cannot be canceled: {rule.reason}.",
        code=rule.code,
        status=409,
        retryable=rule.retryable,
    )


def reward_cancel(*, reward_id: Any, reason: str = "canceled by request") -> Reward:
    """Cancel one reward as orders.policy allows: release its hold, or void its code and refund."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        rule = reward_cancel_locked(reward, reason=reason)
        if rule.action == CancelAction.REFUSE:
            raise _refusal(reward, rule)
        order_refresh_status(order=reward.order)
    return reward


def order_cancel(*, order_id: Any, reason: str = "order canceled by request") -> Order:
    """Cancel every reward of the order not yet issued (release their holds); issued codes are left alone."""
    with transaction.atomic():
        order = Order.objects.filter(pk=order_id).first()  # locked after its rewards, by order_refresh_status
        if order is None:
            raise NotFoundError("No such order.")
        rewards = list(rewards_for_update().filter(order=order).order_by("pk"))
        # Codes already issued are left alone: voiding a code is a decision per reward (POST .../rewards/{id}/cancel).
        canceled = sum(
            reward_cancel_locked(reward, reason=reason, void=False).action != CancelAction.REFUSE
            for reward in rewards
            if reward.status != RewardStatus.CANCELED
        )
        if not canceled:
            raise ApplicationError(
                "Nothing in this order can be canceled any more: everything is issued, in flight, failed or "
                "canceled (an issued code is canceled reward by reward, which voids it at the supplier first).",
                code="not_cancelable",
                status=409,
            )
        order_refresh_status(order=order)
    return order
