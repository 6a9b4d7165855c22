"""Discount redemption reports: a merchant's partner key (scope `discounts:report`) says a discount reward's code
was used at its checkout; the reward becomes `redeemed` and the tenant hears `discount.redeemed`.

Replays are safe: the same report again (same key, order amount and time) answers the first one's record; any
other report about a redeemed reward is a conflict (409 `already_redeemed`), because a single-use voucher used
twice is exactly what the merchant needs to hear about.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from core import crypto
from core.errors import ApplicationError, NotFoundError
from core.money import format_money
from orders.lifecycle import reward_transition
from orders.models import Reward, RewardStatus
from orders.selectors import reward_lock
from webhooks.events import event_emit

from .models import DiscountRedemption

DISCOUNT_TYPE = "discount"  # catalog.models.ProductType.DISCOUNT, as the reward's product snapshot keeps it
REDEEMABLE_FROM = (RewardStatus.DELIVERED, RewardStatus.OPENED, RewardStatus.DELIVERY_FAILED)


@dataclass(frozen=True)
class RedemptionResult:
    redemption: DiscountRedemption
    created: bool  # False: a replay of the report that redeemed it


def _reward_id_for_code(code: str) -> Any:
    """The discount reward whose code this is. Codes are encrypted at rest, so the stored last four characters
    narrow the candidates and each is decrypted and compared in constant time."""
    candidates = Reward.objects.filter(
        product_snapshot__type=DISCOUNT_TYPE, code_last4=code[-4:], code_voided_at__isnull=True
    ).exclude(code_encrypted="")
    for reward_id, encrypted in candidates.values_list("id", "code_encrypted"):
        if hmac.compare_digest(crypto.decrypt(encrypted).encode(), code.encode()):
            return reward_id
    raise NotFoundError("No discount with this code.")


def discount_redemption_report(
    *,
    partner_key_id: str,
    reward_id: Any = None,
    code: str = "",
    order_amount: Decimal | None = None,
    order_currency: str = "",
    redeemed_at: datetime | None = None,
) -> RedemptionResult:
    """Record that a discount was used. Unknown code or reward, or one that is not a discount: 404."""
    code = code.strip()
    if reward_id is None and not code:
        raise ApplicationError(
            "Name the discount by its code or its reward id.",
            code="validation_error",
            errors={"code": ["Required when reward_id is not given."]},
        )
    with transaction.atomic():
        target = reward_id if reward_id is not None else _reward_id_for_code(code)
        reward = reward_lock(target)
        if reward is None or reward.product_snapshot.get("type") != DISCOUNT_TYPE:
            raise NotFoundError("No such discount.")
        if code and not hmac.compare_digest(crypto.decrypt(reward.code_encrypted or "").encode(), code.encode()):
            raise NotFoundError("No discount with this code.")
        existing = DiscountRedemption.objects.filter(reward=reward).first()
        if existing is not None:
            same = (
                existing.partner_key_id == partner_key_id
                and existing.order_amount == order_amount
                and existing.order_currency == order_currency
                and (redeemed_at is None or existing.redeemed_at == redeemed_at)
            )
            if same:
                return RedemptionResult(existing, created=False)
            raise ApplicationError("This discount was already redeemed.", code="already_redeemed", status=409)
        if reward.status not in REDEEMABLE_FROM:
            raise ApplicationError(
                f"A {reward.status} discount cannot be redeemed.", code="invalid_state_transition", status=409
            )
        redemption = DiscountRedemption.objects.create(
            reward=reward,
            partner_key_id=partner_key_id,
            order_amount=order_amount,
            order_currency=order_currency,
            redeemed_at=redeemed_at or timezone.now(),
        )
        if reward.status == RewardStatus.DELIVERY_FAILED:  # the code reached the shopper some other way
            reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="discount used at the merchant")
        reward_transition(reward=reward, to=RewardStatus.REDEEMED, note="reported by the merchant")
        event_emit(type="discount.redeemed", data=discount_redemption_render(redemption))
    return RedemptionResult(redemption, created=True)


def discount_redemption_render(redemption: DiscountRedemption) -> dict[str, Any]:
    reward = redemption.reward
    return {
        "reward_id": str(reward.id),
        "reference": reward.reference,
        "code_last4": reward.code_last4,
        "status": reward.status,
        "order_amount": None if redemption.order_amount is None else format(redemption.order_amount.normalize(), "f"),
        "order_currency": redemption.order_currency or None,
        "redeemed_at": redemption.redeemed_at.isoformat().replace("+00:00", "Z"),
        "reported_at": redemption.reported_at.isoformat().replace("+00:00", "Z"),
    }


def discount_headline(reward: Reward) -> str:
    """What a discount reward is worth, for the recipient, in the active language: "20% off at Kedai Kopi until
    31 December 2026" (or "USD 10.00 off …"). "" for any other reward (its face value is shown instead)."""
    terms = reward.product_snapshot.get("discount")
    if reward.product_snapshot.get("type") != DISCOUNT_TYPE or not isinstance(terms, dict):
        return ""
    merchant = str(reward.product_snapshot.get("brand") or "")
    value = Decimal(str(terms.get("value") or "0"))
    until = parse_date(str(terms.get("valid_until") or ""))
    if terms.get("kind") == "percent":
        off = {"percent": format(value.normalize(), "f"), "merchant": merchant}
        if until is None:
            return _("%(percent)s%% off at %(merchant)s") % off
        return _("%(percent)s%% off at %(merchant)s until %(date)s") % {**off, "date": date_format(until, "j F Y")}
    off = {"amount": format_money(value, reward.currency), "merchant": merchant}
    if until is None:
        return _("%(amount)s off at %(merchant)s") % off
    return _("%(amount)s off at %(merchant)s until %(date)s") % {**off, "date": date_format(until, "j F Y")}
