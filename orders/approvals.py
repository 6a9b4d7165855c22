"""Maker–checker for orders: whether the tenant's policy makes an order wait, and approve, reject and expire.

A waiting order holds its funds like any other (its rewards are `awaiting_approval`, which fulfilment never
picks up). A second person decides: another staff member, or a key with the `approve` scope other than the
key that placed it (four eyes: the creator gets 403 `four_eyes_required`). Approval hands the rewards to
fulfilment exactly as a new order's; rejection, or nobody deciding within the policy's `expires_after_days`,
cancels them and releases every hold. Each decision locks the order's rewards then the order (the lock order
everywhere in orders), so two approvers, or an approver and the expiry sweep, decide once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError, NotFoundError
from core.text import control_character_error
from tenants.policies import ApprovalPolicy, approval_policy_of
from tenants.selectors import tenant_current

from .handoff import rewards_dispatch
from .lifecycle import order_refresh_status, reward_cancel_locked, reward_transition
from .models import APPROVAL_FIELDS, Approvable, ApprovalStatus, Order, Reward, RewardStatus
from .selectors import requested_by, rewards_for_update

logger = logging.getLogger(__name__)

SYSTEM = Actor(kind="system")


def approval_policy_current() -> ApprovalPolicy:
    """The policy of the tenant whose schema is in use (the sandbox twin carries the live one's)."""
    return approval_policy_of(tenant_current())


def approval_required(
    *, totals: dict[str, Decimal], api_key_id: str = "", created_by_role: str = ""
) -> ApprovalPolicy | None:
    """The policy that makes an order or batch costing `totals` wait for approval, else None."""
    policy = approval_policy_current()
    if policy.enabled and policy.requires(totals=totals, api_key_id=api_key_id, role=created_by_role):
        return policy
    return None


def approval_begin(obj: Approvable, *, policy: ApprovalPolicy, requested_by: str, now: datetime | None = None) -> None:
    """Mark an unsaved (or about to be saved) order or batch as waiting, with its expiry and who asked."""
    obj.approval_status = ApprovalStatus.PENDING
    obj.approval_requested_by = requested_by[:200]
    obj.approval_expires_at = (now or timezone.now()) + timedelta(days=policy.expires_after_days)


def four_eyes_check(*, obj: Any, actor: Actor) -> None:
    """Refuse (403 `four_eyes_required`) a decision by whoever placed `obj` (an order or a batch) or asked for its
    approval (a batch's confirmer, who may not be its uploader)."""
    if actor.kind not in ("staff", "api-key"):
        return  # the expiry sweep
    if actor.label in (requested_by(obj), obj.approval_requested_by):
        raise ApplicationError(
            "You placed this, so someone else must approve or reject it (four eyes).",
            code="four_eyes_required",
            status=403,
        )


def approval_decide(obj: Approvable, *, decision: str, actor: Actor, reason: str = "") -> bool:
    """Record a decision on a locked order or batch; False when the same decision was already recorded (a no-op).

    Another decision already made is 409 `approval_decided`; an object that never waited is 409 too.
    """
    if problem := control_character_error(reason):
        raise ApplicationError(f"reason: {problem}", code="validation_error", errors={"reason": [problem]})
    if obj.approval_status == decision:
        return False
    if obj.approval_status != ApprovalStatus.PENDING:
        state = obj.approval_status or "not waiting for approval"
        raise ApplicationError(f"This is already {state}.", code="approval_decided", status=409)
    obj.approval_status = decision
    obj.approval_decided_by = actor.label
    obj.approval_decided_at = timezone.now()
    obj.approval_reason = reason.strip()[:300]
    return True


def _lock(order_id: Any) -> tuple[Order, list[Reward]]:
    rewards = list(rewards_for_update().filter(order_id=order_id).order_by("pk"))
    order = Order.objects.select_for_update(no_key=True, of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise NotFoundError("No such order.")
    return order, rewards


def order_approval_notice(order: Order, notice: str, *, count: int) -> None:
    """Email the approvers (a new request) or whoever asked (a decision), after commit."""
    from .approval_notices import approval_notice

    approval_notice(
        notice=notice, kind="order", object_id=order.pk, totals={order.currency: order.total_amount},
        count=count, name=order.external_id or "", requested_by=order.approval_requested_by,
        placed_by=requested_by(order), expires_at=order.approval_expires_at, decided_by=order.approval_decided_by,
        reason=order.approval_reason,
    )  # fmt: skip


def _announce(order: Order, event_type: str) -> None:
    from webhooks.events import event_emit

    from .create import without_claim_links
    from .selectors import order_get, order_render

    event_emit(type=event_type, data=without_claim_links(order_render(order_get(order_id=order.pk))))


def order_approve(*, order_id: Any, actor: Actor) -> Order:
    """Approve a waiting order: its rewards go on to fulfilment (scheduled ones at their time). Audited."""
    with transaction.atomic():
        order, rewards = _lock(order_id)
        four_eyes_check(obj=order, actor=actor)
        if not approval_decide(order, decision=ApprovalStatus.APPROVED, actor=actor):
            return order
        now = timezone.now()
        note = f"approved by {actor.label}"
        for reward in rewards:
            if reward.status == RewardStatus.AWAITING_APPROVAL:
                later = reward.deliver_at is not None and reward.deliver_at > now
                to = RewardStatus.SCHEDULED if later else RewardStatus.PENDING
                reward_transition(reward=reward, to=to, note=note)
        order.save(update_fields=APPROVAL_FIELDS)
        order_refresh_status(order=order)
        audit_action(actor=actor, action="order.approve", object_type="order", object_id=order.pk,
                     data={"total": str(order.total_amount), "currency": order.currency})  # fmt: skip
        _announce(order, "order.approved")
        order_approval_notice(order, "approved", count=len(rewards))
        transaction.on_commit(lambda: rewards_dispatch(rewards))
    logger.info("order approved", extra={"event": "order.approved", "order_id": str(order.pk)})
    return order


def order_reject(*, order_id: Any, actor: Actor, reason: str = "", expired: bool = False) -> Order:
    """Reject a waiting order (or let it expire: `expired=True`, by the sweep): every reward is canceled and its
    hold released; the order ends `canceled`. Audited; `order.rejected` then `order.canceled` are announced."""
    decision = ApprovalStatus.EXPIRED if expired else ApprovalStatus.REJECTED
    with transaction.atomic():
        order, rewards = _lock(order_id)
        four_eyes_check(obj=order, actor=actor)
        if not approval_decide(order, decision=decision, actor=actor, reason=reason):
            return order
        note = "approval expired" if expired else f"rejected by {actor.label}"
        for reward in rewards:
            if reward.status == RewardStatus.AWAITING_APPROVAL:
                reward_cancel_locked(reward, reason=note)
        order.save(update_fields=APPROVAL_FIELDS)
        audit_action(actor=actor, action="order.approval_expire" if expired else "order.reject", object_type="order",
                     object_id=order.pk, data={"total": str(order.total_amount), "currency": order.currency,
                                               "reason": order.approval_reason})  # fmt: skip
        _announce(order, "order.rejected")
        order_approval_notice(order, "expired" if expired else "rejected", count=len(rewards))
        order_refresh_status(order=order)
    logger.info("order rejected", extra={"event": f"order.{decision}", "order_id": str(order.pk)})
    return order


def order_approvals_next_expiry() -> datetime | None:
    """When order_approvals_expire() next finds an order in this schema (None: none waits for approval)."""
    pending = Order.objects.filter(approval_status=ApprovalStatus.PENDING)
    expires: datetime | None = pending.aggregate(at=Min("approval_expires_at"))["at"]
    return expires


def order_approvals_expire(*, now: datetime | None = None) -> list[str]:
    """Expire this schema's orders whose approval window has passed; returns their ids. Each in its own
    transaction, re-checked under the locks, so an approval that won the race stands."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(approval_status=ApprovalStatus.PENDING, approval_expires_at__lte=now)
        .order_by("approval_expires_at")
        .values_list("pk", flat=True)
    )
    expired = []
    for order_id in due:
        try:
            order = order_reject(order_id=order_id, actor=SYSTEM, reason="nobody decided in time", expired=True)
        except ApplicationError as exc:
            if exc.code != "approval_decided":
                raise
            continue  # someone decided between the query and the lock: their decision stands
        if order.approval_status == ApprovalStatus.EXPIRED:
            expired.append(str(order_id))
    return expired
