"""The recipient claim page's rules (`/r/<token>`): find a reward by its claim token, open it, reveal its code,
let the recipient pick a product (choice rewards) or confirm the shipping address (physical gifts).

Finding the reward
  Claim links live on the public host, so the token itself leads to the tenant: a public-schema index
  (tenants.ClaimTokenIndex, SHA-256 of the token → tenant schema) is written in the transaction of the
  order that creates the token. Every lookup — in the index, then `Reward.claim_token_hash` inside the
  tenant schema — is by the SHA-256 of the token through a unique/btree index, never a comparison with the
  plaintext, so timing says nothing about how close a guess was (nobody can steer a hash prefix). Tokens
  are 192 random bits (orders.claim_tokens). Per client address, 30 dead links a minute and the
  address is refused (429) until the minute ends, valid links included; all requests are capped at 300.

One face for every dead link
  Malformed, unknown, expired, canceled, failed and used tokens all raise ClaimNotFound, and the view
  answers each with the same 404 page: whoever holds a stale link learns nothing about why it is dead.

The reveal rule: the first reveal binds the link to that browser
  - Opening the page (GET) shows the gift, never the code, and marks a delivered reward `opened`. Mail
    scanners that prefetch links can neither read nor burn a code: revealing is a POST with a CSRF token.
  - Revealing (POST) marks the reward `redeemed` (once), audits a CodeReveal(actor="recipient") through
    fulfillment.services.reward_reveal, and sets a signed, HttpOnly cookie, scoped to this link's path,
    that binds the link to this browser.
  - From then on the same browser sees the code on the same link until the link expires, and every showing
    is audited again. Any other browser gets the "not valid" page: for everyone else the link is used.
  Why not Tremendous's rule (anyone with the link sees the code until expiry)? Links travel through
  forwarded mail, shared inboxes, SMS previews and browser histories, and live for a year
  (CLAIM_LINK_TTL_DAYS); once the recipient has the code, a leaked link would hand the card to whoever
  finds it. Binding costs the recipient little — the code is shown, copyable and barcoded on the device
  they chose, and the sender can still retrieve it through the audited API reveal and pass it on.
  For a choice reward, choosing is the reveal: the code issued for the chosen product is shown at once.

Choice rewards
  reward_choose records the choice first (locked), then asks the chosen product's supplier for a code
  without holding a lock (idempotent per reward id, like fulfilment), then stores it encrypted and
  captures the hold if still pending. Choosing again returns the stored code: never two codes. Options are
  the choice product's orderable, tenant-permitted options in the reward's currency that accept its amount
  (physical options are left out: a link recipient has given no address).

Physical gifts
  Orders never send a physical product as a link, so a physical reward has a claim link only if
  claim_link_issue gave it one. While its Shipment is still `pending`, the page shows the address and lets
  the recipient correct it (same country: the shipping method was priced for it).
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import crypto, ratelimit
from core.errors import ApplicationError, NotFoundError
from core.money import format_amount
from orders.addresses import address_errors, address_normalize
from orders.claim_tokens import claim_token_hash, claim_token_new, claim_tokens_register
from orders.lifecycle import reward_capture, reward_transition
from orders.models import Reward, RewardEvent, RewardStatus
from orders.selectors import claim_url, reward_lock, rewards_for_update

from .suppliers import IssuedCode, SupplierError, SupplierRejected

logger = logging.getLogger(__name__)

# What orders.claim_tokens.claim_token_new makes (32 url-safe characters), with room to lengthen tokens later.
CLAIM_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,86}")
# Dead links (unknown, expired, used…) per client address per minute; beyond it every claim request from the
# address gets 429 until the window ends, valid tokens included: guessing tokens stays hopeless.
CLAIM_FAILURE_LIMIT_PER_MINUTE = getattr(settings, "CLAIM_FAILURE_LIMIT_PER_MINUTE", 30)
# All claim requests per client address per minute (a flood guard). Generous, because a whole office opening
# its gifts after an all-hands shares one address; misses are what the failure limit counts.
CLAIM_RATE_LIMIT_PER_MINUTE = getattr(settings, "CLAIM_RATE_LIMIT_PER_MINUTE", 300)
RECIPIENT_ACTOR = "recipient"
# States in which the recipient holds the reward; `redeemed` only for the browser the link is bound to.
CLAIMABLE = {RewardStatus.DELIVERED, RewardStatus.DELIVERY_FAILED, RewardStatus.OPENED}
PREPARING = {RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.PROCESSING}
CHOOSABLE_TYPES = ("digital", "experience")
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "state", "postal_code", "country")
_COLOR_RE = re.compile(r"#[0-9A-Fa-f]{3,8}")


class ClaimNotFound(Exception):
    """Any dead link: malformed, unknown, expired, canceled, failed or used elsewhere. One page for all."""


@dataclass(frozen=True)
class ClaimOption:
    id: str
    brand: str
    name: str
    logo_url: str
    description: str


@dataclass
class ClaimPage:
    """What the claim page shows. `state` is one of: preparing, ready, choose, revealed, address, shipping."""

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
    error: str = ""
    field_errors: dict[str, list[str]] = field(default_factory=dict)


# --- the public-schema index (written by orders.claim_tokens) -------------------------------------


def claim_tenant_get(*, token: str) -> Any:
    """The tenant (live or sandbox schema) that issued `token`; ClaimNotFound for anything else."""
    from tenants.models import ClaimTokenIndex

    if not isinstance(token, str) or not CLAIM_TOKEN_RE.fullmatch(token):
        raise ClaimNotFound
    entry = ClaimTokenIndex.objects.select_related("tenant").filter(token_hash=claim_token_hash(token)).first()
    if entry is None:
        raise ClaimNotFound
    return entry.tenant


def claim_rate_limit(*, client_ip: str) -> tuple[bool, int]:
    """Count one claim request from `client_ip`, before any lookup: (allowed, seconds until retry is useful)."""
    allowed, retry_after = ratelimit.peek(f"claimfail:{client_ip}", limit=CLAIM_FAILURE_LIMIT_PER_MINUTE, window=60)
    if not allowed:
        return False, retry_after
    return ratelimit.hit(f"claim:{client_ip}", limit=CLAIM_RATE_LIMIT_PER_MINUTE, window=60)


def claim_failure_record(*, client_ip: str) -> None:
    """A dead link was asked for from `client_ip` (counted the same whatever made it dead)."""
    ratelimit.hit(f"claimfail:{client_ip}", limit=CLAIM_FAILURE_LIMIT_PER_MINUTE, window=60)


def claim_link_issue(*, reward_id: Any) -> str:
    """A claim URL for a reward that has none yet (e.g. a physical gift whose address the recipient
    should confirm); the existing URL if it has one. Call inside the reward's tenant schema."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if reward.status in (RewardStatus.CANCELED, RewardStatus.FAILED, RewardStatus.EXPIRED):
            raise ApplicationError(f"A {reward.status} reward has no claim link.", code="not_claimable", status=409)
        if not reward.claim_token_encrypted:
            token = claim_token_new()
            reward.claim_token_hash = claim_token_hash(token)
            reward.claim_token_encrypted = crypto.encrypt(token)
            reward.claim_expires_at = timezone.now() + timedelta(days=settings.CLAIM_LINK_TTL_DAYS)
            reward.save(update_fields=["claim_token_hash", "claim_token_encrypted", "claim_expires_at"])
            claim_tokens_register(token_hashes=[reward.claim_token_hash])
        return claim_url(reward) or ""


# --- reading a reward by its token ------------------------------------------------------------------


def _reward_for_token(*, token: str, lock: bool) -> Reward:
    rewards = rewards_for_update() if lock else Reward.objects.select_related("order", "hold")
    reward = rewards.select_related("order__program").filter(claim_token_hash=claim_token_hash(token)).first()
    if reward is None or reward.claim_expires_at is None or reward.claim_expires_at <= timezone.now():
        raise ClaimNotFound
    if reward.status in (RewardStatus.CANCELED, RewardStatus.FAILED, RewardStatus.EXPIRED):
        raise ClaimNotFound
    return reward


def _is_bound(reward: Reward, binding: str | None) -> bool:
    return bool(binding) and hmac.compare_digest(binding, reward.claim_token_hash)


def _shipment(reward: Reward) -> Any:
    from .models import Shipment

    return Shipment.objects.filter(reward=reward).first()


def _is_choice(reward: Reward) -> bool:
    return reward.product_snapshot.get("type") == "choice" or "chosen_from" in reward.product_snapshot


def _base_page(reward: Reward, state: str) -> ClaimPage:
    from catalog.models import Product

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
        logo_url=brand.logo_url if brand else "",
        description=(product.description or brand.description) if product and brand else "",
        terms=brand.terms if brand else "",
        redemption_instructions=brand.redemption_instructions if brand else "",
        amount=format_amount(reward.amount, reward.currency),
        currency=reward.currency,
        recipient_name=reward.recipient_name,
        sender_name=reward.sender_name or (program.sender_name if program else ""),
        message=reward.message,
        primary_color=color if _COLOR_RE.fullmatch(color) else "#4f46e5",
        expires_at=reward.claim_expires_at,
    )


def _choice_options(reward: Reward) -> list[Any]:
    """The products this reward's recipient may pick, in the reward's currency and accepting its amount."""
    from catalog.models import Product
    from catalog.selectors import product_choice_options, product_validate_amount

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


def _page(reward: Reward) -> ClaimPage:
    """The page for a claimable reward, without its code (the reveal adds it)."""
    shipment = _shipment(reward)
    if shipment is not None:
        from .models import ShipmentStatus

        page = _base_page(reward, "address" if shipment.status == ShipmentStatus.PENDING else "shipping")
        page.address = {key: str(shipment.address.get(key) or "") for key in ADDRESS_FIELDS}
        page.shipment_status = shipment.status
        page.carrier = shipment.carrier
        page.tracking_number = shipment.tracking_number
        return page
    if reward.status in PREPARING:
        return _base_page(reward, "preparing")
    if _is_choice(reward) and not reward.code_encrypted:
        page = _base_page(reward, "choose")
        if "chosen_from" in reward.product_snapshot:
            page.chosen_product_id = str(reward.product_id)
        else:
            page.options = [
                ClaimOption(
                    id=str(option.id),
                    brand=option.brand.name,
                    name=option.name,
                    logo_url=option.brand.logo_url,
                    description=option.description or option.brand.description,
                )
                for option in _choice_options(reward)
            ]
        return page
    return _base_page(reward, "ready" if reward.code_encrypted else "preparing")


def _barcode_svg(code: str, barcode_format: str) -> str:
    """An inline SVG of the code (QR or Code 128), drawn here: no image service ever sees a code."""
    try:
        if barcode_format == "qr":
            import segno

            return segno.make(code, error="m", micro=False).svg_inline(scale=5, border=2, title="QR code")
        if barcode_format == "code128":
            import barcode
            from barcode.writer import SVGWriter

            svg = barcode.get("code128", code, writer=SVGWriter()).render(
                {"module_height": 14.0, "write_text": False, "quiet_zone": 4.0}
            )
            text = svg.decode()
            return text[text.index("<svg") :]
    except Exception:  # a code the symbology cannot encode: the page shows the text alone
        logger.warning("barcode not drawn", extra={"event": "claim.barcode_failed", "format": barcode_format})
    return ""


def _reveal_into(page: ClaimPage, reward: Reward) -> ClaimPage:
    """Mark the reward redeemed (once), audit the showing, and put the code on the page."""
    from catalog.models import Product

    from .services import reward_reveal

    if reward.status == RewardStatus.DELIVERY_FAILED:  # the recipient has the link: it did arrive
        reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="recipient opened the claim link")
    if reward.status != RewardStatus.REDEEMED:
        reward_transition(reward=reward, to=RewardStatus.REDEEMED, note="code revealed on the claim page")
    secret = reward_reveal(reward_id=reward.id, actor=RECIPIENT_ACTOR)
    product = Product.objects.filter(pk=reward.product_id).only("barcode_format").first()
    page.state = "revealed"
    page.code = secret["code"]
    page.pin = secret["pin"]
    page.barcode_svg = _barcode_svg(page.code, product.barcode_format if product else "")
    page.binding = reward.claim_token_hash
    return page


# --- what the views call ----------------------------------------------------------------------------


def claim_open(*, token: str, binding: str | None) -> ClaimPage:
    """GET /r/<token>: the page. A delivered reward becomes `opened`; the bound browser sees its code again."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        bound = _is_bound(reward, binding)
        if reward.status == RewardStatus.REDEEMED:
            if not bound:
                raise ClaimNotFound  # used: revealed in another browser
            return _reveal_into(_base_page(reward, "revealed"), reward)
        if reward.status == RewardStatus.DELIVERY_FAILED:
            reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="recipient opened the claim link")
        if reward.status == RewardStatus.DELIVERED:
            reward_transition(reward=reward, to=RewardStatus.OPENED, note="claim page opened")
            logger.info("claim page opened", extra={"event": "claim.opened", "reward_id": str(reward.id)})
        return _page(reward)


def claim_reveal(*, token: str, binding: str | None) -> ClaimPage:
    """POST /r/<token>/reveal: show the code, mark the reward redeemed, audit, bind the link to this browser."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        if reward.status == RewardStatus.REDEEMED and not _is_bound(reward, binding):
            raise ClaimNotFound
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED} or not reward.code_encrypted:
            return _page(reward)  # nothing to reveal yet: still being prepared, a choice to make, or physical
        page = _reveal_into(_base_page(reward, "revealed"), reward)
    logger.info("claim code revealed", extra={"event": "claim.revealed", "reward_id": str(reward.id)})
    return page


def claim_choose(*, token: str, product_id: str, binding: str | None) -> ClaimPage:
    """POST /r/<token>/choose: the recipient's pick for a choice reward; shows the issued code at once."""
    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=False)
        if reward.status == RewardStatus.REDEEMED:
            return claim_reveal(token=token, binding=binding)  # chosen already: the bound browser sees its code
        if not _is_choice(reward) or reward.status not in CLAIMABLE:
            return _page(reward)
    try:
        reward_choose(reward_id=reward.id, product_id=product_id)
    except ApplicationError as exc:
        with transaction.atomic():
            page = _page(_reward_for_token(token=token, lock=True))
        page.error = exc.detail
        return page
    return claim_reveal(token=token, binding=binding)


def claim_address_confirm(*, token: str, address: dict[str, Any]) -> ClaimPage:
    """POST /r/<token>/address: the recipient corrects the shipping address of a gift not yet handed off."""
    from .models import ShipmentEvent, ShipmentStatus
    from .shipments import shipment_lock

    with transaction.atomic():
        reward = _reward_for_token(token=token, lock=True)
        shipment = shipment_lock(reward_id=reward.pk)
        if shipment is None or shipment.status != ShipmentStatus.PENDING:
            page = _page(reward)
            if shipment is not None:
                page.error = "This gift has already been handed to the carrier; the address can no longer change."
            return page
        submitted = {key: str(address.get(key) or "").strip() for key in ADDRESS_FIELDS}
        errors = address_errors(submitted)
        country = str(shipment.address.get("country") or "").upper()
        if submitted["country"].upper() != country:
            errors.setdefault("country", []).append(
                f"This gift ships to {country}; ask the sender if it should go to another country."
            )
        if errors:
            page = _page(reward)
            page.address = submitted
            page.field_errors = errors
            page.error = "Please check the highlighted fields."
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


# --- choice rewards ---------------------------------------------------------------------------------


def _choice_record(*, reward_id: Any, product_id: Any) -> Reward:
    """Step 1 (locked): validate the pick and record it on the reward; a repeat of the same pick is a no-op."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if not _is_choice(reward):
            raise ApplicationError("This reward is not a choice.", code="not_a_choice", status=409)
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            raise ApplicationError(f"A {reward.status} reward cannot be chosen now.", code="not_choosable", status=409)
        chosen_from = reward.product_snapshot.get("chosen_from")
        if chosen_from is not None:
            if str(reward.product_id) != str(product_id):
                raise ApplicationError(
                    "A product has already been chosen for this gift.", code="already_chosen", status=409
                )
            return reward
        try:
            wanted = uuid.UUID(str(product_id))
        except ValueError:
            wanted = None
        option = next((o for o in _choice_options(reward) if o.id == wanted), None)
        if option is None:
            raise ApplicationError(
                "That product is not one of the options for this gift.",
                code="invalid_choice",
                errors={"product_id": ["Not one of the options."]},
            )
        previous = dict(reward.product_snapshot)
        reward.product_snapshot = {
            "brand": option.brand.name,
            "brand_slug": option.brand.slug,
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


def _choice_undo(*, reward_id: Any) -> None:
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


def _choice_settle(*, reward_id: Any, issued: IssuedCode) -> Reward:
    """Step 3 (locked): store the code encrypted (first one wins) and capture the hold if still pending."""
    from funds.models import HoldStatus

    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward.status not in CLAIMABLE | {RewardStatus.REDEEMED}:
            # Canceled (or failed) while the supplier was issuing: the card must not outlive the reward. The
            # cancel policy refuses while a choice is being issued, so this is a safety net, not a path.
            _void_orphan(reward, issued)
            raise ApplicationError("This gift is no longer available.", code="not_choosable", status=409)
        if not reward.code_encrypted:
            reward.code_encrypted = crypto.encrypt(issued.code)
            reward.pin_encrypted = crypto.encrypt(issued.pin) if issued.pin else ""
            reward.code_last4 = issued.code[-4:]
            reward.supplier_reference = issued.reference
            reward.save(update_fields=["code_encrypted", "pin_encrypted", "code_last4", "supplier_reference"])
        if reward.status in CLAIMABLE and reward.hold is not None and reward.hold.status == HoldStatus.PENDING:
            reward_capture(reward=reward)
    return reward


def _void_orphan(reward: Reward, issued: IssuedCode) -> None:
    from .services import reward_code_void

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
    from .services import reward_issue_code

    reward = _choice_record(reward_id=reward_id, product_id=product_id)
    if reward.code_encrypted:
        return reward
    try:
        issued = reward_issue_code(reward=reward)
    except SupplierRejected:
        _choice_undo(reward_id=reward.id)
        logger.warning(
            "choice refused by supplier", extra={"event": "claim.choice_refused", "reward_id": str(reward.id)}
        )
        raise ApplicationError(
            "That product is not available right now; please choose another.",
            code="option_unavailable",
            errors={"product_id": ["Not available right now."]},
        ) from None
    except SupplierError:
        raise ApplicationError(
            "We could not get your code just now; please try again in a minute.",
            code="supplier_unavailable",
            status=503,
            retryable=True,
        ) from None
    reward = _choice_settle(reward_id=reward.id, issued=issued)
    logger.info(
        "choice reward issued",
        extra={"event": "claim.chosen", "reward_id": str(reward.id), "product_id": str(reward.product_id)},
    )
    return reward
