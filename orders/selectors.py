"""Reads of orders, rewards and shipments, and their API representation (shared by responses,
idempotent replays and webhook payloads, so all three always agree), and the one way a reward is read to be
changed (its row lock). Codes are always masked here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from core import crypto
from core.errors import NotFoundError
from core.money import format_amount

from .models import Approvable, DeliveryMethod, Order, Reward
from .search import order_search, reward_search


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def claim_url(reward: Reward) -> str | None:
    return claim_url_of(reward.claim_token_encrypted)


def claim_url_of(claim_token_encrypted: str) -> str | None:
    """The claim link from a reward's stored (encrypted) token, or None when it has none."""
    if not claim_token_encrypted:
        return None
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/r/{crypto.decrypt(claim_token_encrypted)}"


def reward_render(reward: Reward, *, bearer: bool = False) -> dict[str, Any]:
    """The API's reward shape. `claim_url` is a bearer link to the code: only with `bearer` (a credential that
    may send: a `write` key, a portal role with send) is it filled in, never in webhooks or for read keys."""
    shipment = getattr(reward, "shipment", None) if reward.delivery_method == DeliveryMethod.SHIPMENT else None
    return {
        "id": str(reward.id),
        "reference": reward.reference,
        "order_id": str(reward.order_id),
        "status": reward.status,
        "product": {
            "id": str(reward.product_id),
            "brand": reward.product_snapshot.get("brand"),
            "name": reward.product_snapshot.get("name"),
            "type": reward.product_snapshot.get("type"),
        },
        "amount": format_amount(reward.amount, reward.currency),
        "currency": reward.currency,
        "charge": {
            "amount": format_amount(reward.charge_amount, reward.order.currency),
            "currency": reward.order.currency,
        },
        "delivery_method": reward.delivery_method,
        "person_id": str(reward.person_id) if reward.person_id else None,
        "recipient": {
            "name": reward.recipient_name,
            "email": reward.recipient_email or None,
            "phone": reward.recipient_phone or None,
        },
        "message": reward.message,
        "sender_name": reward.sender_name,
        "locale": reward.locale or None,
        "deliver_at": _iso(reward.deliver_at),
        "claim_url": claim_url(reward) if bearer else None,
        "claim_by": _iso(reward.claim_expires_at),
        "code": crypto.mask("x" * 8 + reward.code_last4) if reward.code_last4 else None,
        "shipment_id": str(shipment.id) if shipment else None,
        "failure_reason": reward.failure_reason or None,
        "external_id": reward.external_id or None,
        "metadata": reward.metadata or {},
        "created_at": _iso(reward.created_at),
        "delivered_at": _iso(reward.delivered_at),
        "opened_at": _iso(reward.opened_at),
        "clicked_at": _iso(reward.clicked_at),
    }


def requested_by(obj: Order | Any) -> str:
    """Who placed an order or batch, as an Actor label (`api-key:<key_id>`, `staff:<email>`)."""
    if obj.api_key_id:
        return f"api-key:{obj.api_key_id}"
    return f"staff:{obj.created_by_email}" if obj.created_by_email else ""


def approval_render(obj: Approvable) -> dict[str, Any] | None:
    """The maker–checker block of an order or batch (None when its policy asked for no approval)."""
    if not obj.approval_status:
        return None
    return {
        "status": obj.approval_status,
        "requested_by": obj.approval_requested_by or requested_by(obj),
        "expires_at": _iso(obj.approval_expires_at),
        "decided_by": obj.approval_decided_by or None,
        "decided_at": _iso(obj.approval_decided_at),
        "reason": obj.approval_reason or None,
    }


def order_render(order: Order, *, bearer: bool = False) -> dict[str, Any]:
    """The API's order shape; `bearer` as for reward_render."""
    rewards = sorted(order.rewards.all(), key=lambda r: r.position)
    return {
        "id": str(order.id),
        "type": order.type,
        "status": order.status,
        "external_id": order.external_id,
        "po_number": order.po_number or None,
        "program": order.program.slug if order.program is not None else None,
        "automation_id": str(order.automation_id) if order.automation_id else None,
        "total": {
            "amount": format_amount(order.total_amount, order.currency),
            "currency": order.currency,
            "fx_rate": str(order.fx_rate.normalize()) if order.fx_rate is not None else None,
            "fees": format_amount(order.fees, order.currency),
            "shipping": format_amount(order.shipping_amount, order.currency),
        },
        "rewards": [reward_render(reward, bearer=bearer) for reward in rewards],
        "approval": approval_render(order),
        "metadata": order.metadata or {},
        "created_at": _iso(order.created_at),
    }


def _order_queryset() -> QuerySet[Order]:
    return Order.objects.select_related("program").prefetch_related(
        Prefetch("rewards", queryset=Reward.objects.select_related("shipment"))
    )


def order_list(
    *,
    status: str | None = None,
    external_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    program: str | None = None,
    automation_id: Any = None,
    person_id: Any = None,
    q: str | None = None,
) -> QuerySet[Order]:
    qs = _order_queryset()
    if q:
        qs = order_search(qs, q)
    if status:
        qs = qs.filter(status=status)
    if external_id:
        qs = qs.filter(external_id=external_id)
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if created_before:
        qs = qs.filter(created_at__lt=created_before)
    if program:
        qs = qs.filter(program__slug=program)
    if automation_id:
        qs = qs.filter(automation_id=automation_id)
    if person_id:
        qs = qs.filter(Exists(Reward.objects.filter(order=OuterRef("pk"), person_id=person_id)))
    return qs


def orders_awaiting_approval() -> QuerySet[Order]:
    """Orders waiting for a second person, oldest request first (the approvals queue; a partial index)."""
    from django.db.models import Count

    return (
        Order.objects.filter(approval_status="pending")
        .annotate(reward_count=Count("rewards"))
        .order_by("approval_expires_at", "pk")
    )


def order_get(*, order_id: Any) -> Order:
    order = _order_queryset().filter(pk=order_id).first()
    if order is None:
        raise NotFoundError("No such order.")
    return order


def reward_list(
    *,
    status: str | None = None,
    order_id: Any = None,
    recipient_email: str | None = None,
    person_id: Any = None,
    external_id: str | None = None,
    reference: str | None = None,
    q: str | None = None,
) -> QuerySet[Reward]:
    """The rewards matching every filter given. With `status` or `q`, build and read it inside
    `core.db.custom_plans()` (RewardListApi does): their best plan depends on the value, and a generic plan walked
    every reward for a rare status (docs/operations.md)."""
    qs = Reward.objects.select_related("order", "shipment")
    if q:
        qs = reward_search(qs, q)
    if external_id:
        qs = qs.filter(external_id=external_id.strip())
    if reference:
        qs = qs.filter(reference=reference.strip().upper())
    if status:
        qs = qs.filter(status=status)
    if order_id:
        qs = qs.filter(order_id=order_id)
    if recipient_email:
        qs = qs.filter(recipient_email=recipient_email.strip().lower())
    if person_id:
        qs = qs.filter(person_id=person_id)
    return qs


def rewards_for_update() -> QuerySet[Reward]:
    """Rewards read to be changed: each row the query returns is locked until the transaction ends.

    The one lock on a reward, wherever it is taken: FOR NO KEY UPDATE OF the reward row alone. Every writer of a
    reward waits for it, but rows that only reference the reward (its timeline, reveals) can still be inserted,
    and the order and hold joined here are read, not locked. Lock order everywhere: rewards (by pk when there
    are several), then their order.
    """
    return Reward.objects.select_for_update(of=("self",), no_key=True).select_related("order", "hold")


def reward_lock(reward_id: Any) -> Reward | None:
    """The reward with its order and hold, its row locked (rewards_for_update); None if there is none."""
    # order_by(): no ORDER BY (a primary-key lookup has one row; compiling Reward's default ordering, and
    # first()'s, cost ~10 % of a delivery's CPU).
    return next(iter(rewards_for_update().filter(pk=reward_id).order_by()), None)


def reward_get(*, reward_id: Any) -> Reward:
    reward = Reward.objects.select_related("order", "shipment", "hold").filter(pk=reward_id).first()
    if reward is None:
        raise NotFoundError("No such reward.")
    return reward
