"""Writes for orders and rewards: idempotent creation with funds held, cancellation, the state machine.

order_create validates everything first (catalogue, amounts, FX, recipients, addresses), then in ONE
transaction creates the order, its rewards, one funds hold per reward and the idempotency record, and
stages side effects with on_commit. A crash anywhere before commit leaves nothing; a retry with the same
Idempotency-Key after commit replays the stored response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from core import crypto
from core.bulk import insert_together
from core.errors import ApplicationError
from core.money import quantize
from core.text import control_character_error
from funds.selectors import balance_get
from funds.services import funds_hold, funds_hold_capture, funds_hold_release, funds_refund

from .models import (
    REWARD_DONE_STATES,
    REWARD_TRANSITIONS,
    DeliveryMethod,
    IdempotencyRecord,
    Order,
    OrderStatus,
    OrderType,
    Reward,
    RewardEvent,
    RewardStatus,
)
from .policy import CancelAction, CancelRule, cancel_rule

logger = logging.getLogger(__name__)

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_REWARDS_PER_ORDER = 500  # larger sends go through bulk batches
DELIVERY_METHODS_BY_ORDER_TYPE = {
    OrderType.DIGITAL: {DeliveryMethod.EMAIL, DeliveryMethod.SMS, DeliveryMethod.API},
    OrderType.LINK: {DeliveryMethod.LINK, DeliveryMethod.EMAIL, DeliveryMethod.SMS},
    OrderType.PHYSICAL: {DeliveryMethod.SHIPMENT},
}
DEFAULT_DELIVERY_METHOD = {
    OrderType.DIGITAL: DeliveryMethod.EMAIL,
    OrderType.LINK: DeliveryMethod.LINK,
    OrderType.PHYSICAL: DeliveryMethod.SHIPMENT,
}


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
    country: str | None = None
    shipping_address: dict[str, Any] | None = None
    shipping_method_id: str | None = None


@dataclass
class PlannedReward:
    position: int
    spec: RewardInput
    product: Any
    delivery_method: str
    charge: Decimal
    fx_fee: Decimal
    shipping: Decimal
    shipping_method: Any = None
    address: dict | None = None


def _field_error(path: str, message: str, *, code: str = "validation_error", status: int = 422) -> ApplicationError:
    return ApplicationError(message, code=code, status=status, errors={path: [message]})


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _convert(*, amount: Decimal, from_currency: str, to_currency: str, path: str) -> tuple[Decimal, Decimal, Decimal]:
    """(charge, fee, rate): face value in the funding currency at the stored FX rate, plus the FX fee."""
    if from_currency == to_currency:
        return amount, Decimal(0), Decimal(1)
    from catalog.selectors import fx_rate_get

    fx = fx_rate_get(base=from_currency, quote=to_currency)
    if fx is None:
        raise _field_error(
            path, f"No FX rate from {from_currency} to {to_currency}; fund the order in {from_currency}."
        )
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
    return connection.tenant.live_tenant.default_currency


def _plan_rewards(
    *, order_type: str, rewards: list[RewardInput], program: Any, funding_currency: str | None
) -> tuple[str, list[PlannedReward], Decimal | None]:
    from catalog.selectors import product_get_orderable, product_validate_amount, shipping_method_get
    from fulfillment.addresses import address_errors, address_normalize

    if not rewards:
        raise _field_error("rewards", "An order needs at least one reward.")
    if sum(r.quantity for r in rewards) > MAX_REWARDS_PER_ORDER:
        raise _field_error("rewards", f"At most {MAX_REWARDS_PER_ORDER} rewards per order; use a bulk batch.")
    now = timezone.now()
    planned: list[PlannedReward] = []
    currency: str | None = None
    rates: set[Decimal] = set()
    for index, spec in enumerate(rewards):
        path = f"rewards[{index}]"
        method = spec.delivery_method or DEFAULT_DELIVERY_METHOD[order_type]
        if method not in DELIVERY_METHODS_BY_ORDER_TYPE[order_type]:
            allowed = ", ".join(sorted(DELIVERY_METHODS_BY_ORDER_TYPE[order_type]))
            raise _field_error(f"{path}.delivery_method", f"A {order_type} order delivers by {allowed}.")
        recipient = spec.recipient or {}
        if not (recipient.get("name") or "").strip():
            raise _field_error(f"{path}.recipient.name", "The recipient's name is required.")
        _check_text(path, recipient_name=recipient["name"], sender_name=spec.sender_name, message=spec.message)
        if method == DeliveryMethod.EMAIL and not recipient.get("email"):
            raise _field_error(f"{path}.recipient.email", "Email delivery needs the recipient's email.")
        phone = (recipient.get("phone") or "").strip()
        if method == DeliveryMethod.SMS and not phone:
            raise _field_error(f"{path}.recipient.phone", "SMS delivery needs the recipient's phone (E.164).")
        if phone and not E164_RE.match(phone):
            raise _field_error(f"{path}.recipient.phone", "Use E.164 format, e.g. +14155550123.")
        if spec.deliver_at is not None and spec.deliver_at <= now:
            raise _field_error(f"{path}.deliver_at", "deliver_at must be in the future.")

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
                raise _field_error(f"{path}.shipping_method_id", "Physical rewards need a shipping method.")
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
        if spec.currency and spec.currency.upper() != product.currency:
            raise _field_error(
                f"{path}.currency",
                f"{product.name} is denominated in {product.currency}; give the amount in {product.currency}.",
            )
        try:
            product_validate_amount(product=product, amount=spec.amount)
        except ApplicationError as exc:
            exc.errors = {f"{path}.amount": [exc.detail]}
            raise

        reward_currency = _funding_currency(requested=funding_currency or currency, face_currency=product.currency)
        if currency is None:
            currency = reward_currency
        charge, fee, rate = _convert(
            amount=spec.amount, from_currency=product.currency, to_currency=currency, path=f"{path}.amount"
        )
        rates.add(rate)
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
                )
            )
    single_rate = rates.pop() if len(rates) == 1 else None
    assert currency is not None
    return currency, planned, single_rate


TEXT_FIELD_PATHS = {"recipient_name": "recipient.name", "sender_name": "sender_name", "message": "message"}


def _check_text(path: str, **values: str) -> None:
    """Control characters are refused at the door (422), not by the mail library after the capture."""
    for name, value in values.items():
        error = control_character_error(str(value or ""), multiline=name == "message")
        if error:
            raise _field_error(f"{path}.{TEXT_FIELD_PATHS[name]}", error)


def order_totals(planned: list[PlannedReward]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(charge, FX fees, shipping, total) of planned rewards, in the funding currency: what is held."""
    charge = sum((p.charge for p in planned), Decimal(0))
    fees = sum((p.fx_fee for p in planned), Decimal(0))
    shipping = sum((p.shipping for p in planned), Decimal(0))
    return charge, fees, shipping, charge + fees + shipping


def _check_program_budget(*, program: Any, currency: str, amount: Decimal) -> None:
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


def _claim_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def claim_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _acquire_idempotency_lock(key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"{connection.schema_name}:idem:{key}"]
        )
        return bool(cursor.fetchone()[0])


def idempotency_replay(*, key: str, body_hash: str) -> IdempotencyRecord | None:
    record = IdempotencyRecord.objects.filter(key=key).first()
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise ApplicationError(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
            status=422,
        )
    return record


def order_create(
    *,
    order_type: str,
    rewards: list[RewardInput],
    idempotency_key: str | None,
    body_hash: str,
    render: Any,
    external_id: str | None = None,
    po_number: str = "",
    program_slug: str | None = None,
    funding_currency: str | None = None,
    api_key_id: str = "",
    created_by_email: str = "",
) -> tuple[int, dict, bool]:
    """Create an order; returns (status, response body, replayed). `render(order)` builds the response body.

    Refusals raise ApplicationError and change nothing.
    """
    if order_type not in OrderType.values:
        raise _field_error("type", f"type must be one of {', '.join(OrderType.values)}.")
    with transaction.atomic():
        if idempotency_key:
            if not _acquire_idempotency_lock(idempotency_key):
                raise ApplicationError(
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                    code="idempotency_key_in_flight",
                    status=409,
                    retryable=True,
                )
            record = idempotency_replay(key=idempotency_key, body_hash=body_hash)
            if record is not None:
                return record.response_status, record.response_body, True
        if external_id and Order.objects.filter(external_id=external_id).exists():
            raise ApplicationError(
                f"An order with external_id {external_id!r} already exists.",
                code="duplicate_external_id",
                status=409,
                errors={"external_id": ["Already used by another order."]},
            )
        program = None
        if program_slug:
            from programs.selectors import program_get

            program = program_get(slug=program_slug)
        currency, planned, fx_rate = _plan_rewards(
            order_type=order_type, rewards=rewards, program=program, funding_currency=funding_currency
        )
        _, fees, shipping_total, total = order_totals(planned)
        _check_program_budget(program=program, currency=currency, amount=total)
        order = Order(
            type=order_type,
            external_id=external_id or None,
            po_number=po_number,
            program=program,
            currency=currency,
            total_amount=total,
            fees=fees,
            shipping_amount=shipping_total,
            fx_rate=fx_rate,
            api_key_id=api_key_id,
            created_by_email=created_by_email,
        )
        # Hold ids are chosen now and the holds written last (_hold_funds): the rewards' foreign keys to them
        # are checked at commit, so no UPDATE of the rewards is needed once the holds exist.
        created, reward_events, shipments = _new_rewards(
            order=order, planned=planned, program=program, preassign_holds=True
        )
        try:
            with transaction.atomic(savepoint=False):
                insert_together([order], created, shipments)  # one statement (one round trip) for all of them
        except IntegrityError as exc:
            if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != "order_external_id_unique":
                raise
            raise ApplicationError(
                f"An order with external_id {external_id!r} already exists.",
                code="duplicate_external_id",
                status=409,
                errors={"external_id": ["Already used by another order."]},
            ) from None
        from fulfillment.claims import claim_tokens_register

        claim_tokens_register(token_hashes=[r.claim_token_hash for r in created if r.claim_token_hash])
        from webhooks.services import event_emit

        # Rendered from the rows just written, not re-read: what the selectors would read back is exactly this.
        order._prefetched_objects_cache = {"rewards": created}
        body = render(order)
        record = (
            [IdempotencyRecord(key=idempotency_key, request_hash=body_hash, response_status=201, response_body=body)]
            if idempotency_key
            else []
        )
        # The rewards' first events and the idempotency record go with the order.created event: one round trip.
        # (Not with the order: psycopg parses a statement of more than 50 parameters afresh each time.)
        event_emit(type="order.created", data=body, write_with=[reward_events, record])
        # Funds last: the account rows stay locked from the first hold until commit, so everything else
        # is written before, and concurrent orders of one tenant queue on the lock as briefly as possible.
        _hold_funds(order=order, rewards=created)
        transaction.on_commit(lambda: _dispatch(created))
    logger.info(
        "order created",
        extra={"event": "order.created", "order_id": str(order.id), "rewards": len(created), "currency": currency},
    )
    return 201, body, False


def _new_rewards(
    *, order: Order, planned: list[PlannedReward], program: Any, preassign_holds: bool = False
) -> tuple[list[Reward], list[RewardEvent], list[Any]]:
    """The order's rewards, their first events and their shipments, all unsaved (for core.bulk.insert_together).
    Claim tokens still need registering."""
    from fulfillment.models import Shipment

    now = timezone.now()
    claim_ttl = timedelta(days=settings.CLAIM_LINK_TTL_DAYS)
    rewards: list[Reward] = []
    for item in planned:
        spec = item.spec
        reward_id = uuid.uuid4()
        per_reward_charge = item.charge + item.fx_fee + item.shipping
        recipient = spec.recipient or {}
        reward = Reward(
            id=reward_id,
            order=order,
            position=item.position,
            status=RewardStatus.SCHEDULED if spec.deliver_at else RewardStatus.PENDING,
            product_id=item.product.id,
            product_snapshot={
                "brand": item.product.brand.name,
                "brand_slug": item.product.brand.slug,
                "name": item.product.name,
                "type": item.product.type,
                "supplier": item.product.supplier.code if item.product.supplier_id else "",
            },
            amount=spec.amount,
            currency=item.product.currency,
            charge_amount=per_reward_charge,
            delivery_method=item.delivery_method,
            recipient_name=recipient.get("name", "").strip(),
            recipient_email=(recipient.get("email") or "").strip().lower(),
            recipient_phone=(recipient.get("phone") or "").strip(),
            country=(item.address or {}).get("country") or (spec.country or "").upper(),
            message=spec.message or (program.default_message if program else ""),
            sender_name=spec.sender_name or (program.sender_name if program else ""),
            deliver_at=spec.deliver_at,
            hold_id=uuid.uuid4() if preassign_holds else None,
        )
        if item.delivery_method in (DeliveryMethod.LINK, DeliveryMethod.EMAIL, DeliveryMethod.SMS) and (
            order.type == OrderType.LINK or item.product.type == "choice"
        ):
            token = _claim_token()
            reward.claim_token_hash = claim_token_hash(token)
            reward.claim_token_encrypted = crypto.encrypt(token)
            reward.claim_expires_at = now + claim_ttl
        rewards.append(reward)
    events = [RewardEvent(reward=r, from_status="", to_status=r.status, note="created") for r in rewards]
    shipments = [
        Shipment(
            reward=reward,
            shipping_method_id=item.shipping_method.id,
            carrier=item.shipping_method.carrier,
            method_name=item.shipping_method.name,
            address=item.address,
        )
        for reward, item in zip(rewards, planned, strict=True)
        if item.shipping_method is not None
    ]
    return rewards, events, shipments


def _hold_funds(*, order: Order, rewards: list[Reward]) -> None:
    """One hold per reward (so a failure releases exactly its own), in the order's funding currency, with the
    id each reward already points at (_new_rewards(preassign_holds=True))."""
    for reward in rewards:
        reward.hold = funds_hold(
            currency=order.currency,
            amount=reward.charge_amount,
            reference=f"reward:{reward.id}",
            hold_id=reward.hold_id,
        )


class BatchReward(NamedTuple):
    """A reward written for a bulk batch row: what the batch links its row to and dispatches after commit."""

    id: str  # canonical UUID text
    status: str


def _uuid7_texts(count: int) -> list[str]:
    """`count` time-ordered (version 7, RFC 9562) UUIDs as text, ascending, from one os.urandom call: 48 bits of
    Unix milliseconds, an 18-bit counter (rand_a and the top of rand_b, RFC 9562 method 1), 56 random bits.

    Ids that arrive in order append to the right edge of each index that holds them (rewards, holds and their
    references, reward events, batch rows) instead of dirtying a random page each: about half the database
    time of a bulk chunk's inserts. And uuid.uuid4() with psycopg's UUID dumper cost ~4 µs per id."""
    if count >= 1 << 18:
        raise ValueError("at most 262,143 ids per call")
    raw = bytearray(os.urandom(16 * count))
    for index, byte in enumerate((time.time_ns() // 1_000_000).to_bytes(6, "big")):
        raw[index::16] = bytes((byte,)) * count
    raw[6::16] = bytes(0x70 | i >> 14 for i in range(count))  # version 7, counter bits 17-14
    raw[7::16] = bytes(i >> 6 & 0xFF for i in range(count))  # counter bits 13-6
    raw[8::16] = bytes(0x80 | i & 0x3F for i in range(count))  # RFC 9562 variant, counter bits 5-0
    t = raw.hex()
    return [f"{t[i : i + 8]}-{t[i + 8 : i + 12]}-{t[i + 12 : i + 16]}-{t[i + 16 : i + 20]}-{t[i + 20 : i + 32]}"
            for i in range(0, 32 * count, 32)]  # fmt: skip


def order_create_for_batch_rows(
    *,
    order_type: str,
    currency: str,
    planned: list[PlannedReward],
    source_hold: Any,
    program: Any = None,
    fx_rate: Decimal | None = None,
    po_number: str = "",
    api_key_id: str = "",
    created_by_email: str = "",
) -> list[BatchReward]:
    """One order for rewards already validated and paid for by a bulk batch's hold (batches.services).

    Call inside the chunk's transaction. Writes the order, then its rewards as order_create does (same
    columns, claim links, reward events, shipments) but set-based: plain tuples COPYed per table, no model
    instance per row. Each reward gets its own hold (so a failure releases exactly its own), carved out of
    `source_hold` last (funds_hold_split_many: the ledger accounts stay locked from there until commit).
    Dispatch follows the commit. No `order.created` event: a batch announces itself once, with
    `batch.completed`.
    """
    from core.bulk import copy_insert
    from fulfillment.models import Shipment
    from funds.services import funds_hold_split_many

    _, fees, shipping_total, total = order_totals(planned)
    order = Order.objects.create(
        type=order_type,
        po_number=po_number,
        program=program,
        currency=currency,
        total_amount=total,
        fees=fees,
        shipping_amount=shipping_total,
        fx_rate=fx_rate,
        api_key_id=api_key_id,
        created_by_email=created_by_email,
    )
    now = timezone.now()
    claim_expires_at = now + timedelta(days=settings.CLAIM_LINK_TTL_DAYS)
    claim_methods = (DeliveryMethod.LINK, DeliveryMethod.EMAIL, DeliveryMethod.SMS)
    default_message = program.default_message if program else ""
    default_sender = program.sender_name if program else ""
    snapshots: dict[Any, str] = {}
    rewards: list[tuple] = []
    holds: list[tuple[str, str, Decimal]] = []
    shipments: list[tuple] = []
    token_hashes: list[str] = []
    created: list[BatchReward] = []
    held = Decimal(0)
    ids = iter(_uuid7_texts(2 * len(planned) + sum(1 for item in planned if item.shipping_method is not None)))
    for item in planned:
        spec, product = item.spec, item.product
        snapshot = snapshots.get(product.id)
        if snapshot is None:
            snapshot = snapshots[product.id] = json.dumps(
                {
                    "brand": product.brand.name,
                    "brand_slug": product.brand.slug,
                    "name": product.name,
                    "type": product.type,
                    "supplier": product.supplier.code if product.supplier_id else "",
                }
            )
        reward_id, hold_id = next(ids), next(ids)
        charge = item.charge + item.fx_fee + item.shipping
        status = RewardStatus.SCHEDULED if spec.deliver_at else RewardStatus.PENDING
        token_hash = token_encrypted = ""
        expires_at = None
        if item.delivery_method in claim_methods and (order_type == OrderType.LINK or product.type == "choice"):
            token = _claim_token()
            token_hash, token_encrypted, expires_at = claim_token_hash(token), crypto.encrypt(token), claim_expires_at
            token_hashes.append(token_hash)
        recipient = spec.recipient or {}
        rewards.append(
            (reward_id, order.id, item.position, status, product.id, snapshot, spec.amount, product.currency, charge,
             hold_id, item.delivery_method, recipient.get("name", "").strip(),
             (recipient.get("email") or "").strip().lower(), (recipient.get("phone") or "").strip(),
             (item.address or {}).get("country") or (spec.country or "").upper(), spec.message or default_message,
             spec.sender_name or default_sender, spec.deliver_at, token_hash, token_encrypted, expires_at)
        )  # fmt: skip
        holds.append((hold_id, f"reward:{reward_id}", charge))
        held += charge
        if item.shipping_method is not None:
            method = item.shipping_method
            shipments.append((next(ids), reward_id, method.id, method.carrier, method.name, json.dumps(item.address)))
        created.append(BatchReward(reward_id, status))
    copy_insert(Reward, _BATCH_REWARD_COLUMNS, rewards)
    copy_insert(
        RewardEvent,
        ["reward_id", "from_status", "to_status", "note"],
        ((reward.id, "", reward.status, "created") for reward in created),
    )
    if shipments:
        copy_insert(Shipment, ["id", "reward_id", "shipping_method_id", "carrier", "method_name", "address"], shipments)
    if token_hashes:
        _claim_tokens_copy(token_hashes)
    funds_hold_split_many(hold=source_hold, parts=holds, total=held)  # funds last
    due = [reward for reward in created if reward.status == RewardStatus.PENDING]
    if due:
        transaction.on_commit(lambda: _dispatch(due))
    return created


_BATCH_REWARD_COLUMNS = [
    "id", "order_id", "position", "status", "product_id", "product_snapshot", "amount", "currency", "charge_amount",
    "hold_id", "delivery_method", "recipient_name", "recipient_email", "recipient_phone", "country", "message",
    "sender_name", "deliver_at", "claim_token_hash", "claim_token_encrypted", "claim_expires_at",
]  # fmt: skip


def _claim_tokens_copy(token_hashes: list[str]) -> None:
    """fulfillment.claims.claim_tokens_register with one COPY: the public index of where each claim link lives."""
    from core.bulk import copy_insert
    from tenants.models import ClaimTokenIndex

    tenant_id = getattr(connection.tenant, "pk", None)
    if tenant_id is None:
        raise RuntimeError("claim tokens are created inside a tenant schema")
    copy_insert(ClaimTokenIndex, ["token_hash", "tenant_id"], ((token_hash, tenant_id) for token_hash in token_hashes))


def _dispatch(rewards: list[Reward]) -> None:
    """After commit: hand due rewards to the fulfilment workers (scheduled ones wait for beat).

    Never raises: the order is committed, so a broker outage must not turn its 201 into an error. What is
    not published here, the fulfilment sweeper re-publishes (pending rewards older than the lease).
    """
    try:
        from fulfillment.tasks import reward_fulfil_task
    except ImportError:  # fulfilment workers not installed in this build
        return
    for reward in rewards:
        if reward.status == RewardStatus.PENDING:
            try:
                reward_fulfil_task.delay(str(reward.id))
            except Exception:
                logger.warning(
                    "reward task not published (broker unavailable); the fulfilment sweeper will publish it",
                    extra={"event": "reward.publish_failed", "reward_id": str(reward.id)},
                )
                return


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
    reward.save(update_fields=fields)
    RewardEvent.objects.create(reward=reward, from_status=previous, to_status=to, note=note[:300])
    event_type = {
        RewardStatus.DELIVERED: "reward.delivered",
        RewardStatus.DELIVERY_FAILED: "reward.delivery_failed",
        RewardStatus.OPENED: "reward.opened",
        RewardStatus.REDEEMED: "reward.redeemed",
        RewardStatus.CANCELED: "reward.canceled",
        RewardStatus.FAILED: "reward.failed",
    }.get(to)
    if event_type and event_type != "reward.failed":
        from orders.selectors import reward_render
        from webhooks.services import event_emit

        event_emit(type=event_type, data=reward_render(reward))
    return reward


def order_refresh_status(*, order: Order) -> Order:
    """Derive the order's status from its rewards and announce terminal outcomes.

    Locks the order row first: two rewards of one order finishing at once would otherwise each read the
    other as still processing, and the order would never complete. (Lock order everywhere: rewards, then
    their order.)
    """
    locked = Order.objects.select_for_update(no_key=True).only("status").get(pk=order.pk)
    order.status = locked.status
    counts = dict(order.rewards.values_list("status").annotate(n=Count("id")).order_by())
    active = {status: n for status, n in counts.items() if status != RewardStatus.CANCELED}
    if not active:
        new = OrderStatus.CANCELED
    elif set(active) == {RewardStatus.FAILED}:
        new = OrderStatus.FAILED
    elif all(s in REWARD_DONE_STATES or s == RewardStatus.FAILED for s in active):
        new = OrderStatus.COMPLETED
    elif all(s in (RewardStatus.PENDING, RewardStatus.SCHEDULED) for s in active):
        new = OrderStatus.PENDING
    else:
        new = OrderStatus.PROCESSING
    if new != order.status:
        order.status = new
        order.updated_at = timezone.now()
        order.save(update_fields=["status", "updated_at"])
        event_type = {
            OrderStatus.COMPLETED: "order.completed",
            OrderStatus.FAILED: "order.failed",
            OrderStatus.CANCELED: "order.canceled",
        }.get(new)
        if event_type:
            from orders.selectors import order_render
            from webhooks.services import event_emit

            event_emit(type=event_type, data=order_render(order))
    return order


class VoidRefused(Exception):
    """The supplier answered that it cannot void this code (disclosed, redeemed at the merchant, no endpoint)."""


class VoidUnavailable(Exception):
    """The supplier could not be asked now (timeout, 5xx): nothing changed; cancel may be tried again."""


# Fulfilment registers the function that asks a reward's supplier to void its code (fulfillment.apps): orders
# hands the work on instead of importing the later stage. It returns when the void is confirmed and raises
# VoidRefused or VoidUnavailable otherwise.
_code_voider: Callable[[Reward], None] | None = None


def code_voider_register(voider: Callable[[Reward], None]) -> None:
    global _code_voider
    _code_voider = voider


def _void_code(reward: Reward, rule: CancelRule) -> None:
    """Ask the supplier to void the code (the reward row is locked: no reveal can slip in meanwhile)."""
    if _code_voider is None:
        raise ApplicationError(f"This reward cannot be canceled: {rule.reason}.", code=rule.code, status=409)
    try:
        _code_voider(reward)
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
    reward.code_voided_at = timezone.now()
    reward.code_encrypted = ""
    reward.pin_encrypted = ""
    reward.save(update_fields=["code_voided_at", "code_encrypted", "pin_encrypted"])
    logger.info("reward code voided", extra={"event": "reward.code_voided", "reward_id": str(reward.id)})


def _reward_cancel_locked(reward: Reward, *, reason: str, void: bool = True) -> CancelRule:
    """Cancel one locked reward as orders.policy says; release or refund its funds. Returns the rule applied.

    A refusal is returned (action REFUSE), not raised; a refused void raises. With `void=False` (an order's
    cancel) a reward whose code would need a void is left alone and reported as refused.
    """
    from funds.models import HoldStatus

    rule = cancel_rule(reward)
    if rule.action == CancelAction.REFUSE:
        return rule
    if rule.action == CancelAction.VOID_THEN_REFUND and not void:
        return CancelRule(CancelAction.REFUSE, rule.code, "its code was issued: cancel the reward itself")
    if rule.action == CancelAction.VOID_THEN_REFUND:
        _void_code(reward, rule)
    hold = reward.hold
    if hold is not None and hold.status == HoldStatus.PENDING:
        funds_hold_release(hold=hold)
    elif hold is not None and hold.status == HoldStatus.CAPTURED:
        # Idempotent in funds (one refund per reference), whatever happened before this call.
        funds_refund(currency=hold.currency, amount=hold.amount, reference=f"reward:{reward.id}")
    if hasattr(reward, "shipment"):
        from fulfillment.models import ShipmentStatus

        if reward.shipment.status == ShipmentStatus.PENDING:
            reward.shipment.status = ShipmentStatus.CANCELED
            reward.shipment.save(update_fields=["status"])
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
        reward = (
            Reward.objects.select_for_update(of=("self",), no_key=True)
            .select_related("hold")
            .filter(pk=reward_id)
            .first()
        )
        if reward is None:
            from core.errors import NotFoundError

            raise NotFoundError("No such reward.")
        rule = _reward_cancel_locked(reward, reason=reason)
        if rule.action == CancelAction.REFUSE:
            raise _refusal(reward, rule)
        order_refresh_status(order=reward.order)
    return reward


def order_cancel(*, order_id: Any, reason: str = "order canceled by request") -> Order:
    """Cancel every reward of the order not yet issued (release their holds); issued codes are left alone."""
    with transaction.atomic():
        order = Order.objects.filter(pk=order_id).first()  # locked after its rewards, by order_refresh_status
        if order is None:
            from core.errors import NotFoundError

            raise NotFoundError("No such order.")
        rewards = list(
            Reward.objects.select_for_update(of=("self",), no_key=True)
            .select_related("hold")
            .filter(order=order)
            .order_by("pk")
        )
        # Codes already issued are left alone: voiding a code is a decision per reward (POST .../rewards/{id}/cancel).
        canceled = sum(
            _reward_cancel_locked(reward, reason=reason, void=False).action != CancelAction.REFUSE
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


def reward_capture(*, reward: Reward) -> None:
    """Fulfilment succeeded: capture the reward's hold (idempotent)."""
    if reward.hold is not None:
        funds_hold_capture(hold=reward.hold)


def reward_fail(*, reward: Reward, reason: str) -> Reward:
    """Non-retryable failure: release exactly this reward's hold and mark it failed."""
    if reward.hold is not None:
        funds_hold_release(hold=reward.hold)
    reward.failure_reason = reason[:300]
    reward.save(update_fields=["failure_reason"])
    reward_transition(reward=reward, to=RewardStatus.FAILED, note=reason)
    order_refresh_status(order=reward.order)
    return reward


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_KEY_TTL)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
