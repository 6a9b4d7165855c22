"""Creating an order through the API or the portal: idempotent, everything written in one transaction.

order_create validates everything first (orders.planning: catalogue, amounts, FX, recipients, addresses),
then in ONE transaction creates the order, its rewards, one funds hold per reward and the idempotency
record, and stages the hand-off to fulfilment with on_commit. A crash anywhere before commit leaves
nothing; a retry with the same Idempotency-Key after commit replays the stored response.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_rows_added
from core import crypto
from core.bulk import insert_together
from core.errors import ApplicationError
from core.i18n import locale_choose
from funds.services import HoldRefusedAtCommit, funds_hold, holds_refused_at_commit
from tenants.selectors import tenant_current

from .approvals import approval_begin, approval_required, order_approval_notice
from .claim_tokens import claim_deadline, claim_token_hash, claim_token_new, claim_tokens_register, gets_claim_link
from .handoff import rewards_dispatch, shipment_hooks_required
from .idempotency import idempotency_begin
from .metadata import metadata_clean
from .models import IdempotencyRecord, Order, OrderStatus, OrderType, Reward, RewardEvent, RewardStatus
from .planning import PlannedReward, RewardInput, field_error, order_plan, order_totals, program_budget_check
from .selectors import requested_by

if TYPE_CHECKING:
    from programs.models import Program

logger = logging.getLogger(__name__)


def without_claim_links(body: dict[str, Any]) -> dict[str, Any]:
    """The order as events carry it: a claim link is a bearer credential, never in an event (read keys list
    events, webhooks deliver them) — the response to the key that placed the order is the only place for it."""
    if not any(reward.get("claim_url") for reward in body.get("rewards", ())):
        return body
    return {**body, "rewards": [{**reward, "claim_url": None} for reward in body["rewards"]]}


def order_create(
    *,
    order_type: str,
    rewards: list[RewardInput],
    idempotency_key: str | None,
    body_hash: str,
    render: Callable[[Order], dict[str, Any]],
    external_id: str | None = None,
    po_number: str = "",
    program_slug: str | None = None,
    funding_currency: str | None = None,
    api_key_id: str = "",
    created_by_email: str = "",
    automation_id: uuid.UUID | None = None,
    created_by_role: str = "",
    approval_exempt: bool = False,
    metadata: dict[str, str] | None = None,
    audit: Callable[[Order, int], AuditEvent] | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """Create an order; returns (status, response body, replayed). `render(order)` builds the response body.
    `audit(order, status)`: the caller's audit row for this order (unsaved), written with the order's rows (a
    replay writes none).

    When the tenant's approval policy asks for it (orders.approvals) the order is written `pending_approval`
    with its funds held and nothing handed to fulfilment, and the status is 202. Refusals raise
    ApplicationError and change nothing. `approval_exempt`: spending value already approved elsewhere (a points
    redemption spends points whose money was held when they were awarded).
    """
    if order_type not in OrderType.values:
        raise field_error("type", f"type must be one of {', '.join(OrderType.values)}.")
    metadata = metadata_clean(metadata)
    for index, spec in enumerate(rewards):
        spec.metadata = metadata_clean(spec.metadata, path=f"rewards[{index}].metadata")
    write = functools.partial(
        _order_write,
        order_type=order_type,
        rewards=rewards,
        idempotency_key=idempotency_key,
        body_hash=body_hash,
        render=render,
        external_id=external_id,
        po_number=po_number,
        program_slug=program_slug,
        funding_currency=funding_currency,
        api_key_id=api_key_id,
        created_by_email=created_by_email,
        automation_id=automation_id,
        created_by_role=created_by_role,
        approval_exempt=approval_exempt,
        metadata=metadata,
        audit=audit,
    )
    if not transaction.get_connection().in_atomic_block:
        # This call owns the COMMIT, so the holds are posted during it (funds_hold(at_commit=True)): the tenant's
        # cash row, which all its orders update, is locked for the commit alone rather than from its UPDATE
        # through two more round trips and the Python between them (at 16 clients orders queued on it:
        # bench/PROFILE-orders.md).
        try:
            with holds_refused_at_commit():
                return write(holds_at_commit=True)
        except HoldRefusedAtCommit:
            pass  # rolled back whole: the posting in the transaction decides (402, or the hold and balance.low)
    return write(holds_at_commit=False)


def _order_write(
    *,
    order_type: str,
    rewards: list[RewardInput],
    idempotency_key: str | None,
    body_hash: str,
    render: Callable[[Order], dict[str, Any]],
    external_id: str | None,
    po_number: str,
    program_slug: str | None,
    funding_currency: str | None,
    api_key_id: str,
    created_by_email: str,
    automation_id: uuid.UUID | None,
    created_by_role: str,
    approval_exempt: bool,
    metadata: dict[str, str],
    audit: Callable[[Order, int], AuditEvent] | None,
    holds_at_commit: bool,
) -> tuple[int, dict[str, Any], bool]:
    """order_create's transaction, its holds posted at commit or in it (funds_hold's `at_commit`)."""
    with transaction.atomic():
        if idempotency_key:
            record = idempotency_begin(key=idempotency_key, body_hash=body_hash)
            if record is not None:
                return record.response_status, record.response_body, True
        if external_id and Order.objects.filter(external_id=external_id).exists():
            raise ApplicationError(
                f"An order with external_id {external_id!r} already exists.",
                code="duplicate_external_id",
                status=409,
                errors={"external_id": ["Already used by another order."]},
            )
        program, currency, planned, fx_rate = order_plan(
            order_type=order_type, rewards=rewards, program_slug=program_slug, funding_currency=funding_currency
        )
        order = order_new(
            order_type=order_type,
            planned=planned,
            currency=currency,
            program=program,
            fx_rate=fx_rate,
            external_id=external_id or None,
            po_number=po_number,
            api_key_id=api_key_id,
            created_by_email=created_by_email,
            automation_id=automation_id,
            metadata=metadata,
        )
        program_budget_check(program=program, currency=currency, amount=order.total_amount)
        policy = (
            None
            if approval_exempt
            else approval_required(
                totals={currency: order.total_amount}, api_key_id=api_key_id, created_by_role=created_by_role
            )
        )
        if policy is not None:
            approval_begin(order, policy=policy, requested_by=requested_by(order))
            order.status = OrderStatus.PENDING_APPROVAL
        # Hold ids are chosen now and the holds written last (_hold_funds): the rewards' foreign keys to them
        # are checked at commit, so no UPDATE of the rewards is needed once the holds exist.
        created, reward_events, shipments = _new_rewards(
            order=order, planned=planned, program=program, preassign_holds=True
        )
        try:
            with transaction.atomic(savepoint=False):
                # One statement (one round trip) for all of them; the rewards last, returning the references the
                # database drew for them.
                insert_together([order], shipments, created, returning=("reference",))
        except IntegrityError as exc:
            if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != "order_external_id_unique":
                raise
            raise ApplicationError(
                f"An order with external_id {external_id!r} already exists.",
                code="duplicate_external_id",
                status=409,
                errors={"external_id": ["Already used by another order."]},
            ) from None
        claim_tokens_register(token_hashes=[r.claim_token_hash for r in created if r.claim_token_hash])
        from webhooks.events import event_emit

        # Rendered from the rows just written, not re-read: what the selectors would read back is exactly this.
        order._prefetched_objects_cache = {"rewards": created}  # type: ignore[attr-defined]  # Django's own cache
        body = render(order)
        status = 201 if policy is None else 202
        stored_response = (
            [IdempotencyRecord(key=idempotency_key, request_hash=body_hash, response_status=status, response_body=body)]
            if idempotency_key
            else []
        )
        audit_rows = [audit(order, status)] if audit is not None else []
        # The rewards' first events, the idempotency record and the audit row go with the order.created event: one
        # round trip. (Not with the order: the event and the stored response carry the rewards' references, which
        # the database draws in the order's statement.)
        event_emit(
            type="order.created",
            data=without_claim_links(body),
            write_with=[reward_events, stored_response, audit_rows],
        )
        audit_rows_added(len(audit_rows))
        if policy is not None:
            event_emit(type="order.approval_required", data=without_claim_links(body))
            order_approval_notice(order, "required", count=len(created))
        # Funds last: the account rows stay locked from the first hold until commit, so everything else
        # is written before, and concurrent orders of one tenant queue on the lock as briefly as possible.
        _hold_funds(order=order, rewards=created, at_commit=holds_at_commit)
        transaction.on_commit(lambda: rewards_dispatch(created))
    logger.info(
        "order created",
        extra={"event": "order.created", "order_id": str(order.id), "rewards": len(created), "currency": currency},
    )
    return status, body, False


def order_new(
    *,
    order_type: str,
    planned: list[PlannedReward],
    currency: str,
    program: Program | None,
    fx_rate: Decimal | None,
    external_id: str | None = None,
    po_number: str = "",
    api_key_id: str = "",
    created_by_email: str = "",
    automation_id: uuid.UUID | None = None,
    metadata: dict[str, str] | None = None,
    totals: tuple[Decimal, Decimal, Decimal, Decimal] | None = None,
) -> Order:
    """The order (unsaved) for planned rewards, with their totals (orders.planning.order_totals), or with
    `totals` (the same four sums) when the caller added them up without planning each reward (a bulk chunk's
    rows, summed by PostgreSQL)."""
    _, fees, shipping_total, total = order_totals(planned) if totals is None else totals
    return Order(
        type=order_type,
        external_id=external_id,
        po_number=po_number,
        program=program,
        currency=currency,
        total_amount=total,
        fees=fees,
        shipping_amount=shipping_total,
        fx_rate=fx_rate,
        api_key_id=api_key_id,
        created_by_email=created_by_email,
        automation_id=automation_id,
        metadata=metadata or {},
    )


def reward_fallback_locale(program: Program | None) -> str:
    """A reward's language when its recipient names none: the program's, else the tenant's ('' = the browser's).

    The tenant's settings are written to its live and sandbox rows alike (tenants.services): no lookup here."""
    return locale_choose(program.default_locale if program else "", tenant_current().default_locale)


def _new_rewards(
    *, order: Order, planned: list[PlannedReward], program: Program | None, preassign_holds: bool = False
) -> tuple[list[Reward], list[RewardEvent], list[Any]]:
    """The order's rewards, their first events and their shipments, all unsaved (for core.bulk.insert_together).
    Claim tokens still need registering."""
    now = timezone.now()
    fallback_locale = reward_fallback_locale(program)
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
            status=(
                RewardStatus.AWAITING_APPROVAL
                if order.status == OrderStatus.PENDING_APPROVAL
                else RewardStatus.SCHEDULED
                if spec.deliver_at
                else RewardStatus.PENDING
            ),
            product_id=item.product.id,
            product_snapshot={
                "brand": item.product.brand.name,
                "brand_slug": item.product.brand.slug,
                "redemption_url": item.product.brand.redemption_url,  # the email's "use it at" link
                "name": item.product.name,
                "type": item.product.type,
                "supplier": item.product.supplier.code if item.product.supplier_id else "",
                **({"discount": discount} if (discount := item.product.discount_snapshot()) else {}),
            },
            amount=spec.amount,
            currency=item.product.currency,
            charge_amount=per_reward_charge,
            delivery_method=item.delivery_method,
            person_id=item.person_id,
            recipient_name=recipient.get("name", "").strip(),
            recipient_email=(recipient.get("email") or "").strip().lower(),
            recipient_phone=(recipient.get("phone") or "").strip(),
            country=(item.address or {}).get("country") or (spec.country or "").upper(),
            message=spec.message or (program.default_message if program else ""),
            sender_name=spec.sender_name or (program.sender_name if program else ""),
            locale=locale_choose(recipient.get("locale")) or fallback_locale,
            deliver_at=spec.deliver_at,
            external_id=spec.external_id,
            metadata=spec.metadata,
            hold_id=uuid.uuid4() if preassign_holds and not item.product.zero_cost else None,
        )
        if gets_claim_link(order_type=order.type, delivery_method=item.delivery_method, product_type=item.product.type):
            token = claim_token_new()
            reward.claim_token_hash = claim_token_hash(token)
            reward.claim_token_encrypted = crypto.encrypt(token)
            reward.claim_expires_at = claim_deadline(
                now=now, program=program, deliver_at=spec.deliver_at, claim_by=spec.claim_by
            )
        rewards.append(reward)
    events = [RewardEvent(reward=r, from_status="", to_status=r.status, note="created") for r in rewards]
    shipping = [
        (reward, item) for reward, item in zip(rewards, planned, strict=True) if item.shipping_method is not None
    ]
    shipments = []
    if shipping:
        new_shipment = shipment_hooks_required().new
        shipments = [
            new_shipment(reward=reward, shipping_method=item.shipping_method, address=item.address)
            for reward, item in shipping
        ]
    return rewards, events, shipments


def _hold_funds(*, order: Order, rewards: list[Reward], at_commit: bool = False) -> None:
    """One hold per reward (so a failure releases exactly its own), in the order's funding currency, with the
    id each reward already points at (_new_rewards(preassign_holds=True)). A zero-cost reward has none: nothing is
    held for it, so nothing is ever captured, released or refunded (funds_hold still refuses 0 for the rest)."""
    for reward in rewards:
        if reward.hold_id is None:
            continue
        reward.hold = funds_hold(
            currency=order.currency,
            amount=reward.charge_amount,
            reference=f"reward:{reward.id}",
            hold_id=reward.hold_id,
            at_commit=at_commit,
        )
