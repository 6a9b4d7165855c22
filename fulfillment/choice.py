"""Choice rewards: the recipient picks the product on the claim page, and the chosen product's code is issued then.

reward_choose records the choice first (locked), then asks the chosen product's supplier for a code
without holding a lock (idempotent per reward id, like fulfilment), then stores it encrypted and
captures the hold if still pending. Choosing again returns the stored code: never two codes. Options are
the choice product's orderable, tenant-permitted options in the reward's currency that accept its amount
(physical options are left out: a link recipient has given no address). If the reward was canceled while
the supplier was issuing, the code just issued is voided at once (see choice_settle).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Product
from catalog.selectors import product_choice_options, product_validate_amount
from core.errors import ApplicationError, NotFoundError
from funds.models import HoldStatus
from orders.lifecycle import reward_capture
from orders.models import Reward, RewardEvent, RewardStatus
from orders.selectors import reward_lock

from .claim_links import CLAIMABLE
from .services import reward_code_store, reward_code_void, reward_issue_code
from .suppliers import IssuedCode, SupplierError, SupplierRejected

logger = logging.getLogger(__name__)

CHOOSABLE_TYPES = ("digital", "experience")


def reward_is_choice(reward: Reward) -> bool:
    """A choice reward, whether or not the recipient has chosen yet."""
    return reward.product_snapshot.get("type") == "choice" or "chosen_from" in reward.product_snapshot


def choice_options(reward: Reward) -> list[Product]:
    """The products this reward's recipient may pick, in the reward's currency and accepting its amount."""
    original_id = reward.product_snapshot.get("chosen_from", {}).get("product_id") or reward.product_id
    choice_product = Product.objects.filter(pk=original_id).first()
    if choice_product is None:
        return []
    options = []
    for option in product_choice_options(product=choice_product).filter(
        currency=reward.currency, type__in=CHOOSABLE_TYPES
    ):
        if reward.country and reward.country not in option.countries:
            continue
        try:
            product_validate_amount(product=option, amount=reward.amount)
        except ApplicationError:
            continue
        options.append(option)
    return options


def choice_record(*, reward_id: Any, product_id: Any) -> Reward:
    """Step 1 (locked): validate the pick and record it on the reward; a repeat of the same pick is a no-op."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if not reward_is_choice(reward):
            raise ApplicationError("This reward is not a choice.", code="not_a_choice", status=409)
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            raise ApplicationError(f"A {reward.status} reward cannot be chosen now.", code="not_choosable", status=409)
        chosen_from = reward.product_snapshot.get("chosen_from")
        if chosen_from is not None:
            if str(reward.product_id) != str(product_id):
                raise ApplicationError(
                    _("A product has already been chosen for this gift."), code="already_chosen", status=409
                )
            return reward
        try:
            wanted = uuid.UUID(str(product_id))
        except ValueError:
            wanted = None
        option = next((o for o in choice_options(reward) if o.id == wanted), None)
        if option is None:
            raise ApplicationError(
                _("That product is not one of the options for this gift."),
                code="invalid_choice",
                errors={"product_id": [_("Not one of the options.")]},
            )
        previous = dict(reward.product_snapshot)
        reward.product_snapshot = {
            "brand": option.brand.name,
            "brand_slug": option.brand.slug,
            "redemption_url": option.brand.redemption_url,
            "name": option.name,
            "type": option.type,
            "supplier": option.supplier.code,
            "chosen_from": {"product_id": str(reward.product_id), **previous},
        }
        reward.product_id = option.id
        reward.updated_at = timezone.now()
        reward.save(update_fields=["product_id", "product_snapshot", "updated_at"])
        RewardEvent.objects.create(
            reward=reward, from_status=reward.status, to_status=reward.status, note=f"recipient chose {option.name}"
        )
    return reward


def choice_undo(*, reward_id: Any) -> None:
    """The chosen product's supplier refused for good: let the recipient pick again (if no code was stored)."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        chosen_from = reward.product_snapshot.get("chosen_from") if reward else None
        if reward is None or chosen_from is None or reward.code_encrypted:
            return
        original = dict(chosen_from)
        reward.product_id = uuid.UUID(original.pop("product_id"))
        reward.product_snapshot = original
        reward.save(update_fields=["product_id", "product_snapshot"])
        RewardEvent.objects.create(
            reward=reward, from_status=reward.status, to_status=reward.status, note="choice refused by the supplier"
        )


def choice_settle(*, reward_id: Any, issued: IssuedCode) -> Reward:
    """Step 3 (locked): store the code encrypted (first one wins) and capture the hold if still pending."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            # Canceled (or failed) while the supplier was issuing: the card must not outlive the reward. The
            # cancel policy refuses while a choice is being issued, so this is a safety net, not a path.
            _void_orphan(reward, issued)
            raise ApplicationError(_("This gift is no longer available."), code="not_choosable", status=409)
        reward_code_store(reward, issued)
        if reward.status in CLAIMABLE and reward.hold is not None and reward.hold.status == HoldStatus.PENDING:
            reward_capture(reward=reward)
    return reward


def _void_orphan(reward: Reward, issued: IssuedCode) -> None:
    try:
        reward_code_void(reward)
    except Exception:
        logger.exception(
            "a code issued for a canceled choice could not be voided; void it at the supplier by hand",
            extra={"event": "claim.orphan_code", "reward_id": str(reward.id), "supplier_reference": issued.reference},
        )
    else:
        logger.warning(
            "a code issued for a canceled choice was voided",
            extra={"event": "claim.orphan_voided", "reward_id": str(reward.id)},
        )


def reward_choose(*, reward_id: uuid.UUID | str, product_id: uuid.UUID | str) -> Reward:
    """The recipient of a choice reward picks `product_id`: record it, issue its code once, capture the hold.

    Idempotent: choosing the same product again returns the stored code without asking the supplier;
    a different product once one is recorded is refused (`already_chosen`). The supplier is asked with
    reference = reward id and no lock held, so a crash after issuing is repaired by choosing again.
    """
    reward = choice_record(reward_id=reward_id, product_id=product_id)
    if reward.code_encrypted:
        return reward
    try:
        issued = reward_issue_code(reward=reward)
    except SupplierRejected:
        choice_undo(reward_id=reward.id)
        logger.warning(
            "choice refused by supplier", extra={"event": "claim.choice_refused", "reward_id": str(reward.id)}
        )
        raise ApplicationError(
            _("That product is not available right now; please choose another."),
            code="option_unavailable",
            errors={"product_id": [_("Not available right now.")]},
        ) from None
    except SupplierError:
        raise ApplicationError(
            _("We could not get your code just now; please try again in a minute."),
            code="supplier_unavailable",
            status=503,
            retryable=True,
        ) from None
    reward = choice_settle(reward_id=reward.id, issued=issued)
    logger.info(
        "choice reward issued",
        extra={"event": "claim.chosen", "reward_id": str(reward.id), "product_id": str(reward.product_id)},
    )
    return reward
