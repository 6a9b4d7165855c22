"""Physical shipments: the shipment state machine, the partner's tracking updates, and what they do to the reward.

`shipment_transition` is the one place a shipment changes state (checked against SHIPMENT_TRANSITIONS).
It writes the tracking event, emits the webhook and moves the reward in the same transaction:

  submitted  — the gift was bought (hold captured by fulfilment) and queued for the partner's manifest;
  shipped, in_transit, exception — the reward stays `processing`;
  delivered  — the reward becomes `delivered` and the order's status is refreshed (usually `completed`);
  returned   — the gift came back to the sender; see `_reward_returned` for the return policy.

Tracking updates go through `shipment_tracking_update`, which makes a repeated report a no-op, so a partner
may resend a file or retry a callback safely. They are the fulfilment partner's word, never the tenant's (a
`returned` shipment refunds the tenant): they arrive over the API with the partner's operator-issued key
(fulfillment/apis.py refuses tenant keys), or from the operator (`manage.py shipment_tracking_import` for a
partner's file, `manage.py shipment_report` for one report). No tenant-facing path changes a shipment's status.

Locks: the reward row, then the shipment row — the same order as fulfilment (`services._settle`),
through `orders.selectors.reward_lock` and `shipment_lock`.
"""

from __future__ import annotations

import csv
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.bulk import copy_insert
from core.errors import ApplicationError, NotFoundError
from orders.lifecycle import order_refresh_status, reward_transition
from orders.models import Reward, RewardStatus
from orders.selectors import reward_lock

from .models import SHIPMENT_TRANSITIONS, Shipment, ShipmentEvent, ShipmentStatus

if TYPE_CHECKING:
    from catalog.models import ShippingMethod

logger = logging.getLogger(__name__)

# What a fulfilment partner may report. `pending`/`submitted` are ours; `canceled` belongs to order cancellation.
TRACKING_STATUSES = (
    ShipmentStatus.SHIPPED,
    ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.DELIVERED,
    ShipmentStatus.RETURNED,
    ShipmentStatus.EXCEPTION,
)
WEBHOOK_EVENT_BY_STATUS: dict[str, str] = {
    ShipmentStatus.SHIPPED: "shipment.shipped",
    ShipmentStatus.DELIVERED: "shipment.delivered",
    ShipmentStatus.RETURNED: "shipment.returned",
}
RETURN_POLICIES = ("refund", "keep")
RETURN_REASON = "returned to sender"
# A partner's clock may run a little ahead of ours; further in the future is a mistake in the file.
OCCURRED_AT_MAX_SKEW = timedelta(hours=1)
MAX_LENGTHS = {"tracking_number": 100, "description": 300, "location": 200}
TRACKING_IMPORT_COLUMNS = ("shipment_id", "status", "tracking_number", "description", "location", "occurred_at")
TRACKING_IMPORT_MAX_ROWS = 50_000  # one transaction per row: ~3 ms each, so ~3 min at the limit


def shipment_lock(*, reward_id: Any) -> Shipment | None:
    """The reward's shipment, its row locked (FOR NO KEY UPDATE, like the reward's) until the transaction ends.

    Lock the reward first (orders.selectors.reward_lock): reward, then shipment, everywhere."""
    return next(iter(Shipment.objects.select_for_update(no_key=True).filter(reward_id=reward_id).order_by()), None)


def _lock(shipment_id: Any) -> tuple[Reward, Shipment]:
    """Lock the shipment's reward, then the shipment (fulfilment's order). Raises NotFoundError."""
    reward_id = Shipment.objects.filter(pk=shipment_id).values_list("reward_id", flat=True).first()
    reward = reward_lock(reward_id) if reward_id is not None else None
    shipment = shipment_lock(reward_id=reward_id) if reward is not None else None
    if reward is None or shipment is None:
        raise NotFoundError("No such shipment.")
    return reward, shipment


def shipment_transition(
    *,
    shipment: Shipment,
    to: str,
    description: str = "",
    location: str = "",
    occurred_at: datetime | None = None,
    tracking_number: str | None = None,
) -> Shipment:
    """Move a shipment to `to`, write its tracking event, emit its webhook and drive the reward.

    Illegal moves raise ApplicationError `invalid_state_transition` (409) and change nothing. An unchanged
    state is a no-op (apart from recording a new tracking number, without an event). Returns the
    shipment as stored after the change.
    """
    if to not in ShipmentStatus.values:
        raise ApplicationError(
            f"Unknown shipment status {to!r}; use one of {', '.join(ShipmentStatus.values)}.",
            code="validation_error",
            errors={"status": ["Unknown status."]},
        )
    with transaction.atomic():
        reward, locked = _lock(shipment.pk)
        tracking_number = (tracking_number or "").strip()
        if locked.status == to:
            if tracking_number and tracking_number != locked.tracking_number:
                locked.tracking_number = tracking_number
                locked.updated_at = timezone.now()
                locked.save(update_fields=["tracking_number", "updated_at"])
            return locked
        if to not in SHIPMENT_TRANSITIONS.get(locked.status, set()):
            raise ApplicationError(
                f"A {locked.status} shipment cannot become {to}.", code="invalid_state_transition", status=409
            )
        previous = locked.status
        locked.status = to
        locked.updated_at = timezone.now()
        fields = ["status", "updated_at"]
        if tracking_number:
            locked.tracking_number = tracking_number
            fields.append("tracking_number")
        locked.save(update_fields=fields)
        ShipmentEvent.objects.create(
            shipment=locked,
            status=to,
            description=(description or ShipmentStatus(to).label)[:300],
            location=location[:200],
            occurred_at=occurred_at or locked.updated_at,
        )
        if to == ShipmentStatus.DELIVERED and reward.status == RewardStatus.PROCESSING:
            reward_transition(reward=reward, to=RewardStatus.DELIVERED, note="shipment delivered")
            order_refresh_status(order=reward.order)
        elif to == ShipmentStatus.RETURNED:
            _reward_returned(reward)
        event_type = WEBHOOK_EVENT_BY_STATUS.get(to)
        if event_type:
            from webhooks.events import event_emit

            from .selectors import shipment_render

            event_emit(type=event_type, data=shipment_render(locked))
    logger.info(
        "shipment status changed",
        extra={"event": "shipment.transition", "shipment_id": str(locked.pk), "from": previous, "to": to},
    )
    return locked


def return_policy() -> str:
    policy: str = settings.SHIPMENT_RETURN_POLICY
    if policy not in RETURN_POLICIES:
        raise ImproperlyConfigured(f"SHIPMENT_RETURN_POLICY must be one of {RETURN_POLICIES}, not {policy!r}.")
    return policy


def _reward_returned(reward: Reward) -> None:
    """The gift came back to the sender. Runs with the reward locked, inside the shipment's transition.

    Return policy (settings.SHIPMENT_RETURN_POLICY):
      `refund` (default) — the reward's captured hold (face value, fees and shipping: what the tenant paid
                 for this reward) goes back to available funds as one `refund` ledger transaction
                 referenced `reward:<id>`. At most once per reward: a `returned` shipment is terminal,
                 and a refund already posted for the reward is never posted again.
      `keep`     — no money moves (the partner does not credit returns; the goods are the tenant's).
    Either way the reward leaves `processing`/`delivered`, because the recipient does not have the gift:
      * still `processing` (returned before delivery was confirmed) → `failed`, reason "returned to sender"
        (`processing → canceled` is not a legal reward move; `failed` is the reward machine's "never
        reached the recipient");
      * already `delivered` (or `opened`/`delivery_failed`) → `canceled`, as an unclaimed link reward is
        canceled and refunded after delivery (`delivered → failed` is not a legal move);
      * anything else (already failed/canceled) stays as it is.
    The order's status is then refreshed (an order whose only reward came back ends `failed`/`canceled`).
    """
    if return_policy() == "refund":
        _refund_once(reward)
    if reward.status == RewardStatus.PROCESSING:
        target = RewardStatus.FAILED
    elif reward.status in (RewardStatus.DELIVERED, RewardStatus.OPENED, RewardStatus.DELIVERY_FAILED):
        target = RewardStatus.CANCELED
    else:
        return
    reward.failure_reason = RETURN_REASON
    reward.lease_expires_at = None
    reward.save(update_fields=["failure_reason", "lease_expires_at"])
    reward_transition(reward=reward, to=target, note=RETURN_REASON)
    order_refresh_status(order=reward.order)


def _refund_once(reward: Reward) -> None:
    """Refund the reward's captured hold, referenced `reward:<id>`.

    The reference is the reward's, not the shipment's, on purpose: a reward cancel refunds under the same
    reference, and funds posts one refund per reference, so no two paths can both refund one reward. The
    check below only keeps a replay quiet; the guarantee belongs to funds.
    """
    from funds.models import HoldStatus, LedgerTransaction, TransactionKind
    from funds.services import funds_hold_release, funds_refund

    hold = reward.hold
    if hold is None:
        return
    hold.refresh_from_db()
    reference = f"reward:{reward.id}"
    if hold.status == HoldStatus.PENDING:  # never captured (not expected for a shipped gift): just let it go
        funds_hold_release(hold=hold)
    elif hold.status == HoldStatus.CAPTURED:
        if LedgerTransaction.objects.filter(kind=TransactionKind.REFUND, reference=reference).exists():
            return
        funds_refund(
            currency=hold.currency,
            amount=hold.amount,
            reference=reference,
            description=f"Refund for {reference}: shipment {RETURN_REASON}",
        )


def shipment_submit(*, reward: Reward) -> Shipment | None:
    """Queue the shipment for the partner's next manifest (idempotent: only a pending shipment moves)."""
    shipment = shipment_lock(reward_id=reward.pk)
    if shipment is None or shipment.status != ShipmentStatus.PENDING:
        return shipment
    return shipment_transition(shipment=shipment, to=ShipmentStatus.SUBMITTED, description="Sent to fulfilment")


# --- Shipments written and canceled with their reward (orders calls these through orders.handoff) -------


def shipment_new(*, reward: Reward, shipping_method: ShippingMethod, address: dict[str, str] | None) -> Shipment:
    """A pending shipment (unsaved) for a physical reward: orders writes it with the order, in one statement."""
    return Shipment(
        reward=reward,
        shipping_method_id=shipping_method.id,
        carrier=shipping_method.carrier,
        method_name=shipping_method.name,
        address=address,
    )


def shipments_copy(rows: list[tuple[str, str, ShippingMethod, dict[str, str] | None]]) -> None:
    """Bulk batches' shipments with one COPY: rows of (shipment id, reward id, shipping method, address)."""
    copy_insert(
        Shipment,
        ["id", "reward_id", "shipping_method_id", "carrier", "method_name", "address"],
        (
            (shipment_id, reward_id, method.id, method.carrier, method.name, json.dumps(address))
            for shipment_id, reward_id, method, address in rows
        ),
    )


def shipment_cancel_with_reward(reward: Reward) -> None:
    """The reward (row locked) is being canceled: a shipment not yet sent to the partner is canceled with it."""
    if hasattr(reward, "shipment") and reward.shipment.status == ShipmentStatus.PENDING:
        shipment_transition(shipment=reward.shipment, to=ShipmentStatus.CANCELED, description="Reward canceled")


# --- Tracking updates from the fulfilment partner ---------------------------------------------------


@dataclass(frozen=True)
class TrackingUpdate:
    """One report from the partner, validated (see `tracking_update_parse`)."""

    shipment_id: uuid.UUID
    status: str
    tracking_number: str = ""
    description: str = ""
    location: str = ""
    occurred_at: datetime | None = None


def tracking_update_apply(update: TrackingUpdate) -> tuple[Shipment, bool]:
    """Apply one parsed report (a tracking file's row, the operator's `shipment_report`)."""
    return shipment_tracking_update(
        shipment_id=update.shipment_id,
        status=update.status,
        tracking_number=update.tracking_number,
        description=update.description,
        location=update.location,
        occurred_at=update.occurred_at,
    )


def tracking_update_parse(raw: dict[str, Any]) -> TrackingUpdate:
    """Validate a report given as strings (a CSV row); raises ApplicationError with per-field `errors`."""
    errors: dict[str, list[str]] = {}
    values = {key: str(raw.get(key) or "").strip() for key in TRACKING_IMPORT_COLUMNS}
    shipment_id = None
    try:
        shipment_id = uuid.UUID(values["shipment_id"])
    except ValueError:
        errors["shipment_id"] = ["Not a shipment id (a UUID)." if values["shipment_id"] else "This field is required."]
    if values["status"] not in TRACKING_STATUSES:
        errors["status"] = [f"Use one of {', '.join(TRACKING_STATUSES)}."]
    occurred_at = None
    if values["occurred_at"]:
        try:
            occurred_at = parse_datetime(values["occurred_at"])
        except ValueError:
            occurred_at = None
        if occurred_at is None:
            errors["occurred_at"] = ["Use an ISO 8601 timestamp such as 2026-11-23T09:00:00Z."]
        elif timezone.is_naive(occurred_at):
            occurred_at = occurred_at.replace(tzinfo=UTC)  # a naive partner timestamp is read as UTC
    for key, limit in MAX_LENGTHS.items():
        if len(values[key]) > limit:
            errors[key] = [f"At most {limit} characters."]
    if errors:
        first = next(iter(errors.items()))
        raise ApplicationError(f"{first[0]}: {first[1][0]}", code="validation_error", errors=errors)
    assert shipment_id is not None
    return TrackingUpdate(
        shipment_id=shipment_id,
        status=values["status"],
        tracking_number=values["tracking_number"],
        description=values["description"],
        location=values["location"],
        occurred_at=occurred_at,
    )


def shipment_tracking_update(
    *,
    shipment_id: Any,
    status: str,
    tracking_number: str | None = None,
    description: str = "",
    location: str = "",
    occurred_at: datetime | None = None,
) -> tuple[Shipment, bool]:
    """Apply one partner report; returns (shipment, changed). A report already recorded is a no-op.

    Already recorded means: the shipment is in that status now; or it has an event with that status at the
    same `occurred_at`; or — when the report carries no time — it passed through that status before and
    cannot go back to it (a stale or resent report). Anything else goes through `shipment_transition`,
    so an illegal move raises `invalid_state_transition` (409) and changes nothing.
    """
    if status not in TRACKING_STATUSES:
        raise ApplicationError(
            f"A partner may report {', '.join(TRACKING_STATUSES)}; not {status!r}.",
            code="validation_error",
            errors={"status": ["Not a tracking status."]},
        )
    if occurred_at is not None and occurred_at > timezone.now() + OCCURRED_AT_MAX_SKEW:
        raise ApplicationError(
            "occurred_at is in the future.", code="validation_error", errors={"occurred_at": ["In the future."]}
        )
    with transaction.atomic():
        _, shipment = _lock(shipment_id)
        if shipment.status != status:
            seen = shipment.events.filter(status=status)
            if occurred_at is not None:
                if seen.filter(occurred_at=occurred_at).exists():
                    return shipment, False
            elif seen.exists() and status not in SHIPMENT_TRANSITIONS.get(shipment.status, set()):
                return shipment, False
        before = (shipment.status, shipment.tracking_number)
        shipment = shipment_transition(
            shipment=shipment,
            to=status,
            description=description,
            location=location,
            occurred_at=occurred_at,
            tracking_number=tracking_number,
        )
    return shipment, (shipment.status, shipment.tracking_number) != before


@dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1, the first shipment row 2
    shipment_id: str
    code: str
    message: str


@dataclass
class ImportResult:
    applied: int = 0  # rows that changed a shipment
    unchanged: int = 0  # rows already recorded (a re-imported file is all unchanged)
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.applied + self.unchanged + self.failed


def shipment_tracking_import(*, path: str | Path) -> ImportResult:
    """Apply a partner's tracking file (columns TRACKING_IMPORT_COLUMNS) to the current tenant's shipments.

    Every row is validated and applied in file order, each in its own transaction: a bad row (unknown
    shipment, bad status or date, illegal transition) is reported with its row number and does not block
    the others. Re-importing the same file changes nothing (see `shipment_tracking_update`). A file without
    the `shipment_id` and `status` columns, or with more than TRACKING_IMPORT_MAX_ROWS rows, is refused whole.
    """
    result = ImportResult()
    try:
        _import_rows(path, result)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ApplicationError(
            f"The tracking file is not readable UTF-8 CSV ({exc}); rows before the problem "
            f"({result.rows}) were processed.",
            code="validation_error",
        ) from None
    logger.info(
        "tracking file imported",
        extra={
            "event": "shipment.tracking_import",
            "applied": result.applied,
            "unchanged": result.unchanged,
            "failed": result.failed,
        },
    )
    return result


def _import_rows(path: str | Path, result: ImportResult) -> None:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in ("shipment_id", "status") if name not in header]
        if missing:
            raise ApplicationError(
                f"The tracking file lacks the column(s) {', '.join(missing)}; "
                f"expected {','.join(TRACKING_IMPORT_COLUMNS)}.",
                code="validation_error",
                errors={"columns": [f"Missing: {', '.join(missing)}."]},
            )
        reader.fieldnames = header
        for index, raw in enumerate(reader):
            row = index + 2
            if index >= TRACKING_IMPORT_MAX_ROWS:
                raise ApplicationError(
                    f"A tracking file may have at most {TRACKING_IMPORT_MAX_ROWS} rows; split it. "
                    f"Rows up to {row - 1} were applied.",
                    code="validation_error",
                )
            shipment_ref = str(raw.get("shipment_id") or "").strip()
            try:
                update = tracking_update_parse(raw)
                _, changed = tracking_update_apply(update)
            except ApplicationError as exc:
                result.failed += 1
                result.errors.append(RowError(row=row, shipment_id=shipment_ref, code=exc.code, message=exc.detail))
                continue
            if changed:
                result.applied += 1
            else:
                result.unchanged += 1
