"""Planning an order before anything is written: validation, funding currency and FX, totals, program budget.

plan_rewards is shared by order_create (orders.create), the quote (orders.quotes) and bulk batches, so what
is quoted or validated is exactly what an order holds. Refusals raise ApplicationError with per-field
`errors` paths such as `rewards[0].recipient.phone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from core.errors import ApplicationError
from core.i18n import locale_normalize, supported_locales
from core.money import quantize
from core.phone import E164_RE
from core.text import control_character_error
from funds.selectors import balance_get
from programs.models import CLAIM_DAYS_MAX
from tenants.selectors import tenant_current

from .addresses import address_errors, address_normalize
from .claim_tokens import gets_claim_link
from .models import DeliveryMethod, Order, OrderStatus, OrderType

if TYPE_CHECKING:
    from catalog.models import Product, ShippingMethod
    from programs.models import Program

MAX_REWARDS_PER_ORDER = 500  # larger sends go through bulk batches
DELIVERY_METHODS_BY_ORDER_TYPE: dict[str, set[str]] = {
    OrderType.DIGITAL: {DeliveryMethod.EMAIL, DeliveryMethod.SMS, DeliveryMethod.API},
    OrderType.LINK: {DeliveryMethod.LINK, DeliveryMethod.EMAIL, DeliveryMethod.SMS},
    OrderType.PHYSICAL: {DeliveryMethod.SHIPMENT},
}
DEFAULT_DELIVERY_METHOD: dict[str, str] = {
    OrderType.DIGITAL: DeliveryMethod.EMAIL,
    OrderType.LINK: DeliveryMethod.LINK,
    OrderType.PHYSICAL: DeliveryMethod.SHIPMENT,
}
TEXT_FIELD_PATHS = {"recipient_name": "recipient.name", "sender_name": "sender_name", "message": "message"}


@dataclass
class RewardInput:
    product_id: str
    amount: Decimal
    currency: str | None = None
    quantity: int = 1
    delivery_method: str | None = None
    recipient: dict[str, str] = field(default_factory=dict)
    message: str = ""
    sender_name: str = ""
    deliver_at: datetime | None = None
    claim_by: datetime | None = None  # a claim link's deadline (else the program's claim_days)
    country: str | None = None
    shipping_address: dict[str, Any] | None = None
    shipping_method_id: str | None = None
    # Instead of `recipient`: a person of the tenant's directory, by id or external_id; the recipient fields are
    # copied from them when the order is planned (recipient_from_person).
    person_id: str | None = None
    person_external_id: str | None = None
    external_id: str = ""  # the client's reference for this reward (not unique)
    metadata: dict[str, str] = field(default_factory=dict)  # checked by orders.metadata


@dataclass
class PlannedReward:
    position: int
    spec: RewardInput
    product: Product
    delivery_method: str
    charge: Decimal
    fx_fee: Decimal
    shipping: Decimal
    shipping_method: ShippingMethod | None = None
    address: dict[str, str] | None = None  # normalised (orders.addresses.address_normalize)
    person_id: Any = None  # the person the recipient fields were copied from, if any


def recipient_from_person(spec: RewardInput, path: str) -> Any:
    """The person a reward names (person_id or person_external_id), with `spec.recipient` filled from them:
    name, email, phone and locale, copied now so later edits to the person never change what was sent. None
    when the reward names no person. Naming a person and an inline recipient at once is a 422."""
    if not (spec.person_id or spec.person_external_id):
        return None
    if spec.recipient:
        raise field_error(f"{path}.recipient", "Give either a recipient or a person (person_id / person_external_id).")
    from people.models import PersonStatus
    from people.selectors import person_find

    person = person_find(person_id=spec.person_id, external_id=spec.person_external_id, field=f"{path}.person_id")
    if person.status == PersonStatus.LEFT:
        raise field_error(f"{path}.person_id", "This person has left; mark them active to send them a reward.")
    # A language the platform does not speak (a person may be "pt-BR") falls back to the program's or tenant's.
    locale = locale_normalize(person.locale)
    spec.recipient = {"name": person.name, "email": person.email, "phone": person.phone, "locale": locale}
    return person


class OrderPlan(NamedTuple):
    """An order validated and priced, not yet written: what order_create writes and order_quote prices."""

    program: Program | None
    currency: str  # the funding currency
    planned: list[PlannedReward]
    fx_rate: Decimal | None  # None when rewards are charged at several rates


def field_error(path: str, message: str, *, code: str = "validation_error", status: int = 422) -> ApplicationError:
    return ApplicationError(message, code=code, status=status, errors={path: [message]})


def _convert(*, amount: Decimal, from_currency: str, to_currency: str, path: str) -> tuple[Decimal, Decimal, Decimal]:
    """(charge, fee, rate): face value in the funding currency at the stored FX rate, plus the FX fee."""
    if from_currency == to_currency:
        return amount, Decimal(0), Decimal(1)
    from catalog.selectors import fx_rate_get

    fx = fx_rate_get(base=from_currency, quote=to_currency)
    if fx is None:
        raise field_error(path, f"No FX rate from {from_currency} to {to_currency}; fund the order in {from_currency}.")
    charge, fee = convert_at_rate(amount=amount, rate=fx.rate, to_currency=to_currency)
    return charge, fee, fx.rate


def convert_at_rate(*, amount: Decimal, rate: Decimal, to_currency: str) -> tuple[Decimal, Decimal]:
    """(charge, FX fee) in `to_currency` for `amount` at `rate` (shared by orders and bulk batches)."""
    converted = amount * rate
    fee = converted * Decimal(str(settings.FX_FEE_PERCENT)) / 100
    return quantize(converted, to_currency), quantize(fee, to_currency)


def _funding_currency(*, requested: str | None, face_currency: str) -> str:
    if requested:
        return requested.upper()
    if balance_get(currency=face_currency) is not None:
        return face_currency
    return tenant_current().live_tenant.default_currency


def order_plan(
    *, order_type: str, rewards: list[RewardInput], program_slug: str | None, funding_currency: str | None
) -> OrderPlan:
    """The program named by `program_slug` (if any), then plan_rewards under its rules."""
    program = None
    if program_slug:
        from programs.selectors import program_get

        program = program_get(slug=program_slug)
    currency, planned, fx_rate = plan_rewards(
        order_type=order_type, rewards=rewards, program=program, funding_currency=funding_currency
    )
    return OrderPlan(program, currency, planned, fx_rate)


def plan_rewards(
    *, order_type: str, rewards: list[RewardInput], program: Program | None, funding_currency: str | None
) -> tuple[str, list[PlannedReward], Decimal | None]:
    """Validate every reward (catalogue, amount, recipient, address, text) and price it in the funding
    currency: (funding currency, one PlannedReward per reward to create, the single FX rate or None)."""
    from catalog.selectors import product_get_orderable, product_validate_amount, shipping_method_get

    if not rewards:
        raise field_error("rewards", "An order needs at least one reward.")
    if sum(r.quantity for r in rewards) > MAX_REWARDS_PER_ORDER:
        raise field_error("rewards", f"At most {MAX_REWARDS_PER_ORDER} rewards per order; use a bulk batch.")
    from catalog.inventory import PoolStock

    now = timezone.now()
    planned: list[PlannedReward] = []
    currency: str | None = None
    rates: set[Decimal] = set()
    pools = PoolStock()
    for index, spec in enumerate(rewards):
        path = f"rewards[{index}]"
        method = spec.delivery_method or DEFAULT_DELIVERY_METHOD[order_type]
        if method not in DELIVERY_METHODS_BY_ORDER_TYPE[order_type]:
            allowed = ", ".join(sorted(DELIVERY_METHODS_BY_ORDER_TYPE[order_type]))
            raise field_error(f"{path}.delivery_method", f"A {order_type} order delivers by {allowed}.")
        person = recipient_from_person(spec, path)
        recipient = spec.recipient or {}
        if not (recipient.get("name") or "").strip():
            raise field_error(f"{path}.recipient.name", "The recipient's name is required.")
        _check_text(path, recipient_name=recipient["name"], sender_name=spec.sender_name, message=spec.message)
        if method == DeliveryMethod.EMAIL and not recipient.get("email"):
            raise field_error(f"{path}.recipient.email", "Email delivery needs the recipient's email.")
        phone = (recipient.get("phone") or "").strip()
        if method == DeliveryMethod.SMS and not phone:
            raise field_error(f"{path}.recipient.phone", "SMS delivery needs the recipient's phone (E.164).")
        if phone and not E164_RE.match(phone):
            raise field_error(f"{path}.recipient.phone", "Use E.164 format, e.g. +14155550123.")
        if (recipient.get("locale") or "").strip() and not locale_normalize(recipient["locale"]):
            raise field_error(
                f"{path}.recipient.locale", f"Use one of the platform's languages: {', '.join(supported_locales())}."
            )
        if spec.deliver_at is not None and spec.deliver_at <= now:
            raise field_error(f"{path}.deliver_at", "deliver_at must be in the future.")
        if spec.claim_by is not None and spec.claim_by <= max(now, spec.deliver_at or now):
            raise field_error(f"{path}.claim_by", "claim_by must be after now and after deliver_at.")
        if spec.claim_by is not None and spec.claim_by > now + timedelta(days=CLAIM_DAYS_MAX):
            raise field_error(f"{path}.claim_by", "claim_by may be at most ten years away.")

        address = None
        shipping_method = None
        country = (spec.country or "").upper() or None
        if order_type == OrderType.PHYSICAL:
            errors = address_errors(spec.shipping_address)
            if errors:
                raise ApplicationError(
                    "The shipping address is incomplete or invalid; see `errors`.",
                    code="validation_error",
                    errors={f"{path}.shipping_address.{key}": value for key, value in errors.items()},
                )
            address = address_normalize(spec.shipping_address or {})
            country = address["country"]
            if not spec.shipping_method_id:
                raise field_error(f"{path}.shipping_method_id", "Physical rewards need a shipping method.")
            shipping_method = shipping_method_get(shipping_method_id=spec.shipping_method_id, country=country)

        product = product_get_orderable(product_id=spec.product_id, program=program, country=country)
        if order_type == OrderType.PHYSICAL and product.type != "physical":
            raise ApplicationError(
                f"{product.name} is not a physical product; use a digital or link order.",
                code="product_unavailable",
                errors={f"{path}.product_id": ["Not a physical product."]},
            )
        if order_type != OrderType.PHYSICAL and product.type == "physical":
            raise ApplicationError(
                f"{product.name} is a physical product; use a physical order with a shipping address.",
                code="product_unavailable",
                errors={f"{path}.product_id": ["Physical product in a non-physical order."]},
            )
        if spec.claim_by is not None and not gets_claim_link(
            order_type=order_type, delivery_method=method, product_type=product.type
        ):
            raise field_error(
                f"{path}.claim_by",
                "claim_by applies to claim links only (link orders and choice products).",
            )
        if spec.currency and spec.currency.upper() != product.currency:
            raise field_error(
                f"{path}.currency",
                f"{product.name} is denominated in {product.currency}; give the amount in {product.currency}.",
            )
        try:
            product_validate_amount(product=product, amount=spec.amount)
        except ApplicationError as exc:
            exc.errors = {f"{path}.amount": [exc.detail]}
            raise
        if shortage := pools.take(product=product, denomination=spec.amount, count=max(1, spec.quantity)):
            raise field_error(f"{path}.product_id", shortage, code="out_of_stock")

        reward_currency = _funding_currency(requested=funding_currency or currency, face_currency=product.currency)
        if currency is None:
            currency = reward_currency
        if product.zero_cost:
            charge = fee = Decimal(0)  # merchant-funded: no conversion, no fee, nothing held (orders.create)
        else:
            charge, fee, rate = _convert(
                amount=spec.amount, from_currency=product.currency, to_currency=currency, path=f"{path}.amount"
            )
            rates.add(rate)
            if charge + fee <= 0:
                raise field_error(
                    f"{path}.amount",
                    f"{spec.amount} {product.currency} is worth less than the smallest {currency} amount.",
                    code="amount_not_allowed",
                )
        shipping = Decimal(0)
        if shipping_method is not None:
            shipping, shipping_fee, _ = _convert(
                amount=shipping_method.price,
                from_currency=shipping_method.currency,
                to_currency=currency,
                path=f"{path}.shipping_method_id",
            )
            fee += shipping_fee
        for _ in range(max(1, spec.quantity)):
            planned.append(
                PlannedReward(
                    position=len(planned),
                    spec=spec,
                    product=product,
                    delivery_method=method,
                    charge=charge,
                    fx_fee=fee,
                    shipping=shipping,
                    shipping_method=shipping_method,
                    address=address,
                    person_id=person.id if person is not None else None,
                )
            )
    single_rate = rates.pop() if len(rates) == 1 else None
    assert currency is not None
    return currency, planned, single_rate


def _check_text(path: str, **values: str) -> None:
    """Control characters are refused at the door (422), not by the mail library after the capture."""
    for name, value in values.items():
        error = control_character_error(str(value or ""), multiline=name == "message")
        if error:
            raise field_error(f"{path}.{TEXT_FIELD_PATHS[name]}", error)


def order_totals(planned: list[PlannedReward]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(charge, FX fees, shipping, total) of planned rewards, in the funding currency: what is held."""
    charge = sum((p.charge for p in planned), Decimal(0))
    fees = sum((p.fx_fee for p in planned), Decimal(0))
    shipping = sum((p.shipping for p in planned), Decimal(0))
    return charge, fees, shipping, charge + fees + shipping


def program_budget_check(*, program: Program | None, currency: str, amount: Decimal) -> None:
    """Lock the program row and refuse the order if it would exceed this period's budget."""
    if program is None or program.budget_amount is None or program.budget_period == "none":
        return
    from programs.models import Program
    from programs.selectors import program_budget_period_start

    Program.objects.select_for_update().get(pk=program.pk)  # serialises orders against one budget
    if program.budget_currency and program.budget_currency != currency:
        return  # budgets are tracked in their own currency only
    start = program_budget_period_start(program=program, at=timezone.now())
    spent = (
        Order.objects.filter(program=program, currency=currency, created_at__gte=start)
        .exclude(status__in=[OrderStatus.CANCELED, OrderStatus.FAILED])
        .aggregate(total=Sum("total_amount"))["total"]
        or 0
    )
    if spent + amount > program.budget_amount:
        remaining = max(Decimal(0), program.budget_amount - spent)
        raise ApplicationError(
            f"This order ({amount} {currency}) exceeds the {program.budget_period} budget of program "
            f"'{program.slug}' ({remaining} {currency} left).",
            code="budget_exceeded",
            status=422,
        )
