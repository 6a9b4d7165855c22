"""A bulk batch's states and the moves between them: the one transition function (BATCH_TRANSITIONS), confirm
(one funds hold per currency, then the workers are queued), finish, cancel, and re-queueing stale batches.

Every move runs under the batch's row lock (`batch_lock`, which batches.processing takes for each chunk too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from audit.actors import Actor
from core.errors import ApplicationError, NotFoundError
from core.publish import task_publish
from orders.models import APPROVAL_FIELDS, ApprovalStatus

from .models import (
    BATCH_ACTIVE_STATES,
    BATCH_SENT_STATES,
    BATCH_TRANSITIONS,
    Batch,
    BatchHold,
    BatchKind,
    BatchRow,
    BatchRowStatus,
    BatchStatus,
)

logger = logging.getLogger(__name__)

PROCESS_TASK = "batches.tasks.batch_process_task"


def batch_can_become(*, batch: Batch, to: str) -> bool:
    """Whether BATCH_TRANSITIONS allows `batch` to move to `to` now (what a service checks before the work)."""
    return to in BATCH_TRANSITIONS.get(batch.status, set())


def batch_transition(*, batch: Batch, to: str, fields: Iterable[str] = ()) -> Batch:
    """The one place a batch changes state: sets `to` and saves it with `fields` (what the caller changed with it).

    An illegal move raises `invalid_state` (409) and saves nothing. An unchanged status writes no status; the
    `fields` are still saved (a chunk's progress while the batch stays `processing`).
    """
    fields = list(fields)
    if batch.status != to:
        if not batch_can_become(batch=batch, to=to):
            raise ApplicationError(f"A {batch.status} batch cannot become {to}.", code="invalid_state", status=409)
        batch.status = to
        fields.append("status")
    if fields:
        batch.save(update_fields=fields)
    return batch


def batch_lock(batch_id: Any) -> Batch:
    """The batch with its program, its row locked until the end of the transaction; NotFoundError when there is none.

    The one lock on a batch: FOR NO KEY UPDATE OF the batch row alone (the program is read, not locked). Chunks
    run one at a time because each takes it (batches.processing)."""
    batch = (
        Batch.objects.select_for_update(no_key=True, of=("self",)).select_related("program").filter(pk=batch_id).first()
    )
    if batch is None:
        raise NotFoundError("No such batch.")
    return batch


def duplicate_file_error(earlier_id: Any) -> ApplicationError:
    """The refusal of a file already sent as batch `earlier_id` (upload or confirm without force)."""
    return ApplicationError(
        f"This file was already sent as batch {earlier_id}. Upload (or confirm) with force=true to send it again.",
        code="duplicate_file",
        status=409,
        errors={"file": [f"Same file as batch {earlier_id}."]},
        title="Duplicate file",
    )


def batch_confirm(*, batch_id: Any, force: bool = False, actor: Actor | None = None, role: str = "") -> Batch:
    """Hold the funds for every valid row at once (one hold per funding currency) and queue the workers.

    When the tenant's approval policy asks for it (its thresholds, the confirming key or the staff `role`), the
    batch waits `pending_approval` with its funds held instead, and a second person decides (batches.approvals).
    Refused with 402 insufficient_funds (nothing changed) when a currency's available funds do not cover it.
    Confirming a batch already confirmed (or further) changes nothing.
    """
    with transaction.atomic():
        return batch_confirm_locked(batch=batch_lock(batch_id), force=force, actor=actor, role=role)


def batch_confirm_locked(*, batch: Batch, force: bool, actor: Actor | None = None, role: str = "") -> Batch:
    """batch_confirm on a batch whose row the caller has locked (an upload that confirms at once)."""
    from funds.services import funds_hold
    from orders.approvals import approval_begin, approval_required
    from orders.planning import program_budget_check
    from orders.selectors import requested_by

    from .approvals import batch_approval_notice

    if batch.status in BATCH_SENT_STATES:
        return batch
    if not batch_can_become(batch=batch, to=BatchStatus.CONFIRMED):
        raise ApplicationError(f"A {batch.status} batch cannot be confirmed.", code="invalid_state", status=409)
    if force:
        batch.allow_duplicate = True
    if not batch.allow_duplicate and batch.kind != BatchKind.PEOPLE:
        earlier = (
            Batch.objects.filter(file_sha256=batch.file_sha256, status__in=BATCH_SENT_STATES)
            .exclude(pk=batch.pk)
            .values_list("id", flat=True)
            .first()
        )
        if earlier:
            raise duplicate_file_error(earlier)
    for currency, amount in sorted(batch.total_cost.items()):
        program_budget_check(program=batch.program, currency=currency, amount=Decimal(amount))
        if Decimal(amount) == 0:
            continue  # only zero-cost rows in this currency: nothing to hold (their rewards hold nothing either)
        hold = funds_hold(
            currency=currency,
            amount=Decimal(amount),
            reference=f"batch:{batch.id}",
            description=f"Hold for bulk batch {batch.id} ({batch.valid_rows} rows)",
        )
        BatchHold.objects.create(batch=batch, currency=currency, hold=hold)
    key_id = actor.id if actor is not None and actor.kind == "api-key" else batch.api_key_id
    totals = {currency: Decimal(amount) for currency, amount in batch.total_cost.items()}
    # A people import moves no money: approvals are for spending (rewards, and points, whose value is held).
    policy = (
        approval_required(totals=totals, api_key_id=key_id, created_by_role=role)
        if batch.kind != BatchKind.PEOPLE
        else None
    )
    if policy is not None:
        from webhooks.events import event_emit

        from .selectors import batch_render

        approval_begin(batch, policy=policy, requested_by=actor.label if actor is not None else requested_by(batch))
        batch_transition(
            batch=batch,
            to=BatchStatus.PENDING_APPROVAL,
            fields=["allow_duplicate", "approval_status", "approval_requested_by", "approval_expires_at"],
        )
        event_emit(type="batch.approval_required", data=batch_render(batch, balances={}))
        batch_approval_notice(batch, "required")
        logger.info("batch waits for approval", extra={"event": "batch.approval_required", "batch_id": str(batch.id)})
        return batch
    return batch_start(batch=batch)


def batch_start(*, batch: Batch) -> Batch:
    """A batch whose funds are held (and approved, where the policy asks) goes to the workers, after commit."""
    batch.confirmed_at = batch.heartbeat_at = timezone.now()
    batch_transition(batch=batch, to=BatchStatus.CONFIRMED, fields=["confirmed_at", "heartbeat_at", "allow_duplicate"])
    batch_id = str(batch.id)
    # A broker outage must not fail a committed confirm: logged, and batches_sweep queues it once its heartbeat
    # is BATCH_STALE_SECONDS old.
    # BATCH_PARALLEL_CHUNKS tasks: their chunks take disjoint rows (batches.processing), so they run side by side.
    transaction.on_commit(
        lambda: all(
            task_publish(PROCESS_TASK, args=[batch_id], event="batch.enqueue_failed", log_extra={"batch_id": batch_id})
            for _ in range(max(1, settings.BATCH_PARALLEL_CHUNKS))
        )
    )
    logger.info("batch confirmed", extra={"event": "batch.confirmed", "batch_id": batch_id})
    return batch


def _release_holds(batch: Batch) -> None:
    from funds.models import HoldStatus
    from funds.services import funds_hold_release

    for item in BatchHold.objects.select_related("hold").filter(batch=batch).order_by("currency"):
        if item.hold.status == HoldStatus.PENDING:
            funds_hold_release(hold=item.hold)


def batch_finish(*, batch: Batch) -> Batch:
    """Every valid row handled (the caller holds the lock): release what the batch hold has left, end the batch
    `completed` (or `failed` when no row could be sent) and announce it (webhook `batch.completed`)."""
    from webhooks.events import event_emit

    from .selectors import batch_render

    _release_holds(batch)  # what failed rows (and rounding) did not use
    failed = bool(batch.valid_rows) and batch.rows_failed >= batch.valid_rows
    if failed:
        batch.failure_reason = "No row could be sent; see results.csv."
    batch.completed_at = batch.heartbeat_at = timezone.now()
    batch_transition(
        batch=batch,
        to=BatchStatus.FAILED if failed else BatchStatus.COMPLETED,
        fields=["failure_reason", "completed_at", "heartbeat_at"],
    )
    event_emit(type="batch.completed", data=batch_render(batch, balances={}))
    logger.info(
        "batch completed",
        extra={"event": "batch.completed", "batch_id": str(batch.id), "rows": batch.rows_done,
               "failed": batch.rows_failed},
    )  # fmt: skip
    return batch


def batch_cancel(*, batch_id: Any) -> Batch:
    """Stop a batch: a preview is dropped; a confirmed or processing one sends no further rows and releases what
    they had held (rewards already created stay; cancel them through the orders API if needed). A batch waiting
    for approval is withdrawn (its approval ends `rejected`, "withdrawn")."""
    with transaction.atomic():
        batch = batch_lock(batch_id)
        if batch.status == BatchStatus.CANCELED:
            return batch
        if batch.approval_status == ApprovalStatus.PENDING:
            batch.approval_status = ApprovalStatus.REJECTED
            batch.approval_reason = "withdrawn: canceled before approval"
            batch.approval_decided_at = timezone.now()
            batch.save(update_fields=APPROVAL_FIELDS)
        return batch_cancel_locked(batch=batch)


def batch_cancel_locked(*, batch: Batch) -> Batch:
    """batch_cancel on a batch whose row the caller has locked."""
    if not batch_can_become(batch=batch, to=BatchStatus.CANCELED):
        raise ApplicationError(f"A {batch.status} batch cannot be canceled.", code="invalid_state", status=409)
    BatchRow.objects.filter(batch=batch, status=BatchRowStatus.PENDING).update(status=BatchRowStatus.CANCELED)
    _release_holds(batch)
    batch.completed_at = timezone.now()
    return batch_transition(batch=batch, to=BatchStatus.CANCELED, fields=["completed_at"])


def batches_next_stale() -> datetime | None:
    """When batch_requeue_stale() next finds a batch in this schema (None: no confirmed/processing batch)."""
    oldest = Batch.objects.filter(status__in=BATCH_ACTIVE_STATES).aggregate(oldest=Min("heartbeat_at"))["oldest"]
    return oldest + timedelta(seconds=settings.BATCH_STALE_SECONDS) if oldest is not None else None


def batch_requeue_stale(*, stale_after: timedelta | None = None) -> list[str]:
    """Confirmed/processing batches of this schema with no chunk for `stale_after` (a worker died, or the queue
    message was lost): their heartbeat is bumped and their ids returned for re-queueing. Running a batch twice
    at once is harmless (chunks lock the batch), so erring early only costs a wasted task."""
    stale_after = stale_after if stale_after is not None else timedelta(seconds=settings.BATCH_STALE_SECONDS)
    now = timezone.now()
    with transaction.atomic():
        stale = list(
            Batch.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status__in=BATCH_ACTIVE_STATES, heartbeat_at__lt=now - stale_after)
            .values_list("id", flat=True)
        )
        if stale:
            Batch.objects.filter(pk__in=stale).update(heartbeat_at=now)
    return [str(pk) for pk in stale]
