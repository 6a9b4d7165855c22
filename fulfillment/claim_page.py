"""The recipient claim page (`/r/<token>`): what it shows for a reward found by its claim token, and what opening
it, revealing the code, choosing a product (choice rewards) or confirming the shipping address records.

How a token finds its tenant, the dead-link rule and the rate limits: fulfillment.claim_links. The views:
fulfillment.views_claim.

The reveal rule: the link is the bearer credential until it expires
  - Opening the page (GET) shows the gift, never the code, and marks a delivered reward `opened`. Mail
    scanners that prefetch links can neither read nor burn a code: revealing is a POST with a CSRF token.
  - Revealing (POST) marks the reward `redeemed` (once), audits a CodeReveal(actor="recipient") through
    fulfillment.services.reward_reveal, and sets a signed, HttpOnly cookie scoped to this link's path that
    remembers this browser, so reopening the link there shows the code again without a click.
  - Any other browser (the laptop after the phone) gets the page with its Reveal button again and may reveal:
    the recipient's link works wherever they open it, as Tremendous and Tango links do; every showing is
    audited. Until the link expires, whoever holds it holds the gift.
  - A program that wants more turns on verification (Program.claim_verification, fulfillment.claim_verification):
    a browser the link has not seen must first enter a one-time code sent to the recipient's email or phone.
    The cookie that says "this browser was verified" is the same one, signed, so it cannot be forged.
  For a choice reward, choosing is the reveal: the code issued for the chosen product is shown at once
  (fulfillment.choice).

Physical gifts
  Orders never send a physical product as a link, so a physical reward has a claim link only if
  claim_link_issue gave it one. While its Shipment is still `pending`, the page shows the address and lets
  the recipient correct it (same country: the shipping method was priced for it).
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from catalog.images import brand_logo_src, logo_path
from catalog.models import Product
from core.errors import ApplicationError
from core.money import format_money
from orders.addresses import address_errors, address_normalize
from orders.claim_tokens import claim_token_hash
from orders.lifecycle import reward_transition
from orders.models import Reward, RewardEvent, RewardStatus
from orders.selectors import rewards_for_update

from .barcodes import barcode_svg
from .choice import choice_options, reward_choose, reward_is_choice
from .claim_links import CLAIMABLE, DEAD, ClaimNotFound
from .claim_verification import (
    VerificationRefused,
    verification_channel,
    verification_check,
    verification_code_live,
    verification_required,
    verification_send,
)
from .delivery import DeliveryFailed
from .discounts import discount_headline
from .models import Shipment, ShipmentEvent, ShipmentStatus
from .services import reward_reveal
from .shipments import shipment_lock

logger = logging.getLogger(__name__)

RECIPIENT_ACTOR = "recipient"
PREPARING = {RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.PROCESSING}
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "state", "postal_code", "country")
_COLOR_RE = re.compile(r"#[0-9A-Fa-f]{3,8}")
# A shipment's state in the recipient's words (the page says "Your gift is on its way (…)").
SHIPMENT_STATUS_TEXT: dict[str, Any] = {
    ShipmentStatus.PENDING: _("being prepared"),
    ShipmentStatus.SUBMITTED: _("being packed"),
    ShipmentStatus.SHIPPED: _("shipped"),
    ShipmentStatus.IN_TRANSIT: _("in transit"),
    ShipmentStatus.DELIVERED: _("delivered"),
    ShipmentStatus.RETURNED: _("returned to the sender"),
    ShipmentStatus.EXCEPTION: _("delayed: the carrier reported a problem"),
    ShipmentStatus.CANCELED: _("canceled"),
}


@dataclass(frozen=True)
class ClaimOption:
    id: str
    brand: str
    name: str
    logo_url: str
    description: str


@dataclass
class ClaimPage:
    """What the claim page shows. `state` is one of: preparing, ready, verify, choose, revealed, address, shipping."""

    state: str
    brand: str
    product_name: str
    logo_url: str
    description: str
    terms: str
    redemption_instructions: str
    amount: str
    currency: str
    recipient_name: str
    sender_name: str
    message: str
    primary_color: str
    expires_at: datetime | None
    program_logo_url: str = ""  # the sending program's uploaded logo (catalog.images), "" for none
    # The browser binding to store after a reveal (the view signs it into a cookie).
    binding: str = field(default="", repr=False)
    code: str | None = field(default=None, repr=False)  # never in a repr, a log line or a traceback
    pin: str | None = field(default=None, repr=False)
    barcode_svg: str = field(default="", repr=False)
    options: list[ClaimOption] = field(default_factory=list)
    chosen_product_id: str = ""  # a choice recorded whose code is not issued yet (the retry button)
    address: dict[str, str] = field(default_factory=dict)
    address_saved: bool = False
    shipment_status: str = ""
    carrier: str = ""
    tracking_number: str = ""
    verify_destination: str = ""  # state `verify`: where the one-time code goes (masked)
    verify_sent: bool = False
    error: str = ""
    field_errors: dict[str, list[str]] = field(default_factory=dict)


# --- reading a reward by its token ------------------------------------------------------------------


def _reward_for_token(*, token: str, lock: bool) -> Reward:
    rewards = rewards_for_update() if lock else Reward.objects.select_related("order", "hold")
    reward = rewards.select_related("order__program").filter(claim_token_hash=claim_token_hash(token)).first()
    if reward is None:
        raise ClaimNotFound
    expired = reward.claim_expires_at is None or reward.claim_expires_at <= timezone.now()
    if expired or reward.status in DEAD:
        # Whoever holds a real link (192 random bits) may learn who sent it and what to do; nothing more.
        from core.db import connection

        program = reward.order.program
        raise ClaimNotFound(
            company=getattr(connection.tenant, "name", ""),
            sender=reward.sender_name or (program.sender_name if program else ""),
            expired_at=reward.claim_expires_at if expired or reward.status == RewardStatus.EXPIRED else None,
        )
    return reward


def claim_locale(*, token: str) -> str:
    """The language stored on the token's reward ('' when none was named, or no such reward): the page's
    default before the switch or the browser say otherwise."""
    found = Reward.objects.filter(claim_token_hash=claim_token_hash(token)).values_list("locale", flat=True).first()
    return found or ""


def _is_bound(reward: Reward, binding: str | None) -> bool:
    if not binding:
        return False
    return hmac.compare_digest(binding, reward.claim_token_hash)


# --- the page -----------------------------------------------------------------------------------------


def _base_page(reward: Reward, state: str) -> ClaimPage:
    product = Product.objects.select_related("brand").filter(pk=reward.product_id).first()
    brand = product.brand if product else None
    snapshot = reward.product_snapshot
    program = reward.order.program
    branding = dict(program.branding or {}) if program else {}
    color = str(branding.get("primary_color") or "")
    return ClaimPage(
        state=state,
        brand=snapshot.get("brand") or (brand.name if brand else ""),
        product_name=snapshot.get("name", ""),
        logo_url=brand_logo_src(brand),
        program_logo_url=logo_path(str(branding.get("logo") or "")),
        description=(product.description or brand.description) if product and brand else "",
        terms=brand.terms if brand else "",
        redemption_instructions=brand.redemption_instructions if brand else "",
        # in the page's language (the view activates it); a discount says what it takes off, not its face value
        amount=discount_headline(reward) or format_money(reward.amount, reward.currency),
        currency=reward.currency,
        recipient_name=reward.recipient_name,
        sender_name=reward.sender_name or (program.sender_name if program else ""),
        message=reward.message,
        primary_color=color if _COLOR_RE.fullmatch(color) else "#4f46e5",
        expires_at=reward.claim_expires_at,
    )


def _page(reward: Reward) -> ClaimPage:
    """The page for a claimable reward, without its code (the reveal adds it)."""
    shipment = Shipment.objects.filter(reward=reward).first()
    if shipment is not None:
        page = _base_page(reward, "address" if shipment.status == ShipmentStatus.PENDING else "shipping")
        page.address = {key: str(shipment.address.get(key) or "") for key in ADDRESS_FIELDS}
        page.shipment_status = str(SHIPMENT_STATUS_TEXT.get(shipment.status, shipment.status))
        page.carrier = shipment.carrier
        page.tracking_number = shipment.tracking_number
        return page
    if reward.status in PREPARING:
        return _base_page(reward, "preparing")
    if reward_is_choice(reward) and not reward.code_encrypted:
        page = _base_page(reward, "choose")
        if "chosen_from" in reward.product_snapshot:
            page.chosen_product_id = str(reward.product_id)
        else:
            page.options = [
                ClaimOption(
                    id=str(option.id),
                    brand=option.brand.name,
                    name=option.name,
                    logo_url=brand_logo_src(option.brand),
                    description=option.description or option.brand.description,
                )
                for option in choice_options(reward)
            ]
        return page
    return _base_page(reward, "ready" if reward.code_encrypted else "preparing")


def _verify_page(reward: Reward, *, sent: bool = False, error: str = "") -> ClaimPage:
    """This browser must enter a one-time code first (claim verification is on for the program)."""
    page = _base_page(reward, "verify")
    channel = verification_channel(reward)
    page.verify_destination = channel.masked if channel else ""
    page.verify_sent = sent
    page.error = error
    return page


def _reveal_into(page: ClaimPage, reward: Reward) -> ClaimPage:
    """Mark the reward redeemed (once), audit the showing, and put the code on the page."""
    if reward.status == RewardStatus.DELIVERY_FAILED:  # the recipient has the link: it did arrive
        reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="recipient opened the claim link")
    if reward.status != RewardStatus.REDEEMED:
        reward_transition(reward=reward, to=RewardStatus.REDEEMED, note="code revealed on the claim page")
    secret = reward_reveal(reward_id=reward.id, actor=RECIPIENT_ACTOR)
    product = Product.objects.filter(pk=reward.product_id).only("barcode_format").first()
    page.state = "revealed"
    page.code = secret["code"]
    page.pin = secret["pin"]
    page.barcode_svg = barcode_svg(page.code or "", product.barcode_format if product else "")
    page.binding = reward.claim_token_hash
    return page


# --- what the views call ----------------------------------------------------------------------------


def claim_open(*, token: str, binding: str | None) -> ClaimPage:
    """GET /r/<token>: the page. A delivered reward becomes `opened`; the bound browser sees its code again."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        if reward.status == RewardStatus.REDEEMED:
            if _is_bound(reward, binding):
                return _reveal_into(_base_page(reward, "revealed"), reward)
            return _page(reward)  # another browser: the Reveal button (a GET never shows a code)
        if reward.status == RewardStatus.DELIVERY_FAILED:
            reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="recipient opened the claim link")
        if reward.status == RewardStatus.DELIVERED:
            reward_transition(reward=reward, to=RewardStatus.OPENED, note="claim page opened")
            logger.info("claim page opened", extra={"event": "claim.opened", "reward_id": str(reward.id)})
        return _page(reward)


def claim_reveal(*, token: str, binding: str | None) -> ClaimPage:
    """POST /r/<token>/reveal: show the code, mark the reward redeemed, audit, remember this browser."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED} or not reward.code_encrypted:
            return _page(reward)  # nothing to reveal yet: still being prepared, a choice to make, or physical
        if not _is_bound(reward, binding) and verification_required(reward):
            return _verify_page(reward)
        page = _reveal_into(_base_page(reward, "revealed"), reward)
    logger.info("claim code revealed", extra={"event": "claim.revealed", "reward_id": str(reward.id)})
    return page


def claim_choose(*, token: str, product_id: str, binding: str | None) -> ClaimPage:
    """POST /r/<token>/choose: the recipient's pick for a choice reward; shows the issued code at once."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=False)
        if reward.status == RewardStatus.REDEEMED:
            return claim_reveal(token=token, binding=binding)  # chosen already: the bound browser sees its code
        if not reward_is_choice(reward) or reward.status not in CLAIMABLE:
            return _page(reward)
        if not _is_bound(reward, binding) and verification_required(reward):
            return _verify_page(reward)
    try:
        reward_choose(reward_id=reward.id, product_id=product_id)
    except ApplicationError as exc:
        with transaction.atomic():
            page = _page(_reward_for_token(token=token, lock=True))
        page.error = exc.detail
        return page
    return claim_reveal(token=token, binding=binding)


def claim_verify_send(*, token: str) -> ClaimPage:
    """POST /r/<token>/verify/send: send a one-time code to the recipient (claim verification on)."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        if not verification_required(reward) or reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            return _page(reward)
        try:
            verification_send(reward=reward)
        except VerificationRefused as exc:
            return _verify_page(reward, sent=verification_code_live(reward), error=str(exc))
        except (OSError, DeliveryFailed):  # the mail server or SMS provider: nothing was sent
            logger.warning("claim verification code not sent", extra={"event": "claim.verification_unsent",
                                                                      "reward_id": str(reward.id)})  # fmt: skip
            return _verify_page(
                reward, error=gettext("We could not send the code just now. Please try again in a minute.")
            )
        return _verify_page(reward, sent=True)


def claim_verify(*, token: str, code: str, binding: str | None) -> ClaimPage:
    """POST /r/<token>/verify: the recipient's one-time code; right, and the code is revealed in this browser."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        if not verification_required(reward) or reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            return _page(reward)
        if _is_bound(reward, binding):  # verified already (a reload re-posting the form): no second code needed
            return _reveal_into(_base_page(reward, "revealed"), reward) if reward.code_encrypted else _page(reward)
        try:
            verification_check(reward=reward, code=code)
        except VerificationRefused as exc:
            return _verify_page(reward, sent=True, error=str(exc))
        if not reward.code_encrypted:  # a choice reward: this browser may now choose
            page = _page(reward)
            page.binding = reward.claim_token_hash
            return page
        return _reveal_into(_base_page(reward, "revealed"), reward)


def claim_address_confirm(*, token: str, address: dict[str, Any]) -> ClaimPage:
    """POST /r/<token>/address: the recipient corrects the shipping address of a gift not yet handed off."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        shipment = shipment_lock(reward_id=reward.pk)
        if shipment is None or shipment.status != ShipmentStatus.PENDING:
            page = _page(reward)
            if shipment is not None:
                page.error = gettext(
                    "This gift has already been handed to the carrier; the address can no longer change."
                )
            return page
        submitted = {key: str(address.get(key) or "").strip() for key in ADDRESS_FIELDS}
        errors = address_errors(submitted)
        country = str(shipment.address.get("country") or "").upper()
        if submitted["country"].upper() != country:
            errors.setdefault("country", []).append(
                gettext("This gift ships to %(country)s; ask the sender if it should go to another country.")
                % {"country": country}
            )
        if errors:
            page = _page(reward)
            page.address = submitted
            page.field_errors = errors
            page.error = gettext("Please check the highlighted fields.")
            return page
        shipment.address = address_normalize(submitted)
        shipment.updated_at = timezone.now()
        shipment.save(update_fields=["address", "updated_at"])
        ShipmentEvent.objects.create(
            shipment=shipment, status=shipment.status, description="Address confirmed by the recipient"
        )
        RewardEvent.objects.create(
            reward=reward, from_status=reward.status, to_status=reward.status, note="recipient confirmed the address"
        )
        page = _page(reward)
        page.address_saved = True
    logger.info("claim address confirmed", extra={"event": "claim.address_confirmed", "reward_id": str(reward.id)})
    return page
