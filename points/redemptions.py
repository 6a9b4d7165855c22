"""Spending points on a reward: the points pay for an ordinary order, out of the money their awards hold.

In one transaction, under the person's account lock: price the reward exactly as order_create will
(orders.quotes), let any due award expire, refuse with 422 `insufficient_points` if the balance does not cover
ceil(total × points_per_unit), spend the awards first-to-expire first (several, partly), releasing from each
award's hold the value of the points taken, post the redemption, then create the order, whose own hold takes
that money again at once. The tenant's available funds end where they started, but for less than one point's
value when the total is not a whole number of points (the person pays the rounding, the tenant keeps it).
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError
from core.i18n import locale_normalize
from funds.models import Hold
from funds.services import funds_hold_release_part
from orders.create import order_create
from orders.models import DeliveryMethod, OrderType, Reward
from orders.planning import RewardInput
from orders.quotes import order_quote
from orders.selectors import order_render
from people.models import Person
from programs.models import Program

from . import ledger
from .models import PointsAccount, PointsAccountKind, PointsAward, PointsTransaction, PointsTransactionKind
from .services import _take_back, person_balance, points_award, program_with_points

logger = logging.getLogger(__name__)

DIGITAL_METHODS = (DeliveryMethod.EMAIL, DeliveryMethod.SMS, DeliveryMethod.API)


def points_price(*, program: Program, total: Decimal) -> int:
    """Points for a reward costing `total` in the funding currency (rounded up to a whole point)."""
    assert program.points_per_unit
    return math.ceil(total * program.points_per_unit)


def points_redeem(
    *,
    program: Program,
    person: Person,
    product_id: str,
    amount: Decimal,
    currency: str | None = None,
    delivery_method: str | None = None,
    actor: Actor | None,
    api_key_id: str = "",
    created_by_email: str = "",
    bearer: bool = True,
) -> tuple[dict[str, Any], int, int]:
    """Redeem points for one reward to the person: (order body, points spent, balance after)."""
    program_with_points(program)
    method = delivery_method or DeliveryMethod.EMAIL
    if method not in (*DIGITAL_METHODS, DeliveryMethod.LINK):
        raise ApplicationError(
            "Points buy digital rewards and claim links: delivery_method email, sms, api or link.",
            code="validation_error", errors={"delivery_method": ["email, sms, api or link."]},
        )  # fmt: skip
    order_type = OrderType.LINK if method == DeliveryMethod.LINK else OrderType.DIGITAL
    reward = RewardInput(
        product_id=str(product_id), amount=amount, currency=currency, delivery_method=method,
        # In the person's language like any send to a person (review: a Malay reader redeemed on the Malay page and
        # got the gift email in English); a language the platform does not speak falls back to the program's.
        recipient={"name": person.name, "email": person.email, "phone": person.phone,
                   "locale": locale_normalize(person.locale)},
    )  # fmt: skip
    with transaction.atomic():
        ids = ledger.account_ids(program=program, person_id=person.pk)
        account = PointsAccount.objects.select_for_update().get(pk=ids[PointsAccountKind.PERSON])
        quote = order_quote(order_type=order_type, rewards=[reward], program_slug=program.slug,
                            funding_currency=program.points_currency)  # fmt: skip
        if quote.total <= 0:  # a zero-cost discount: 0 points would let anyone take any number of them
            message = "This reward costs nothing, so it is not sold for points: your company sends it."
            raise ApplicationError(message, code="product_unavailable", errors={"product_id": [message]})
        needed = points_price(program=program, total=quote.total)
        awards = list(
            PointsAward.objects.select_for_update(of=("self",))
            .select_related("program", "transaction")
            .filter(account_id=account.pk, remaining__gt=0)
            .order_by(F("expires_at").asc(nulls_last=True), "created_at", "id")
        )
        now = timezone.now()
        for award in awards:
            if award.expires_at is not None and award.expires_at <= now:
                _take_back(award=award, kind=PointsTransactionKind.EXPIRE, reason="Expired")
        balance = person_balance(program=program, person_id=person.pk)
        if balance < needed:
            raise ledger.InsufficientPoints(needed=needed, balance=balance)
        left = needed
        for award in awards:
            if left == 0:
                break
            if award.remaining == 0:
                continue
            take = min(award.remaining, left)
            value = ledger.points_value(program=program, points=take)
            funds_hold_release_part(
                hold=Hold(pk=award.hold_id), amount=value, description=f"{take} {program.points_name} redeemed"
            )
            award.remaining -= take
            award.save(update_fields=["remaining"])
            left -= take
        txn = ledger.post(
            kind=PointsTransactionKind.REDEEM, program=program, person_id=person.pk, points=needed,
            legs=[(account.pk, -needed), (ids[PointsAccountKind.REDEEMED], needed)], reason="Redeemed",
            balance_of_person=balance,
        )  # fmt: skip
        _, body, _ = order_create(
            order_type=order_type, rewards=[reward], idempotency_key=None, body_hash="",
            render=lambda order: order_render(order, bearer=bearer), program_slug=program.slug,
            funding_currency=program.points_currency, api_key_id=api_key_id, created_by_email=created_by_email,
            approval_exempt=True,  # the points are spent already; their money was held when they were awarded
        )  # fmt: skip
        txn.reference = f"order:{body['id']}"
        txn.save(update_fields=["reference"])
        balance_after = balance - needed
        from webhooks.events import event_emit

        event_emit(type="points.redeemed", data={
            "id": str(txn.id), "person_id": str(person.pk), "program": program.slug, "points": needed,
            "balance": balance_after, "order_id": body["id"],
        })  # fmt: skip
        audit_action(actor=actor, action="points.redeem", object_type="order", object_id=body["id"],
                     data={"program": program.slug, "person_id": str(person.pk), "points": needed})  # fmt: skip
    logger.info("points redeemed", extra={"event": "points.redeemed", "order_id": body["id"], "points": needed})
    return body, needed, balance_after


def redemption_refund(reward: Reward) -> None:
    """The reward a redemption paid for failed, was canceled or expired and its money is back in the tenant's
    cash: give the person their points back as a new award (holding that money again), once per redemption.
    Runs in the reward's transaction (orders.handoff); if the funds cannot be held the refusal is logged and the
    reward's own outcome stands."""
    txn = (
        PointsTransaction.objects.select_related("program", "person")
        .filter(kind=PointsTransactionKind.REDEEM, reference=f"order:{reward.order_id}")
        .first()
    )
    if txn is None or txn.person is None:
        return
    try:
        with transaction.atomic():
            points_award(program=txn.program, person=txn.person, points=txn.points,
                         reason=f"Returned: reward {reward.id} was not delivered",
                         external_id=f"refund:{txn.id}", reference=f"order:{reward.order_id}", actor=None)  # fmt: skip
    except ApplicationError as exc:
        extra = {"event": "points.refund_failed", "order_id": str(reward.order_id), "code": exc.code}
        logger.warning("redemption points not returned", extra=extra)
