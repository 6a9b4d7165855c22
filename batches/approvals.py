"""Maker–checker for bulk batches: approve (the batch goes to the workers), reject or expire (its holds released).

The same rules as orders.approvals (four eyes, one decision, audited, announced): a batch whose cost reaches the
policy's threshold waits `pending_approval` after confirmation, its whole cost held. Every decision runs under
the batch's row lock (`batch_lock`), so concurrent approvers and the expiry sweep decide once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError
from orders.approvals import SYSTEM, approval_decide, four_eyes_check
from orders.models import APPROVAL_FIELDS, ApprovalStatus

from .lifecycle import batch_cancel_locked, batch_lock, batch_start
from .models import Batch

logger = logging.getLogger(__name__)


def batch_approval_notice(batch: Batch, notice: str) -> None:
    """Email the approvers (a new request) or whoever asked (a decision), after commit (orders.approval_notices)."""
    from orders.approval_notices import approval_notice
    from orders.selectors import requested_by

    approval_notice(
        notice=notice, kind="batch", object_id=batch.pk,
        totals={currency: Decimal(amount) for currency, amount in batch.total_cost.items()}, count=batch.valid_rows,
        name=batch.name, requested_by=batch.approval_requested_by, placed_by=requested_by(batch),
        expires_at=batch.approval_expires_at, decided_by=batch.approval_decided_by, reason=batch.approval_reason,
    )  # fmt: skip


def _announce(batch: Batch, event_type: str) -> None:
    from webhooks.events import event_emit

    from .selectors import batch_render

    event_emit(type=event_type, data=batch_render(batch, balances={}))


def batch_approve(*, batch_id: Any, actor: Actor) -> Batch:
    """Approve a waiting batch: it is confirmed and the workers start on it. Audited as `batch.approve`."""
    with transaction.atomic():
        batch = batch_lock(batch_id)
        four_eyes_check(obj=batch, actor=actor)
        if not approval_decide(batch, decision=ApprovalStatus.APPROVED, actor=actor):
            return batch
        batch.save(update_fields=APPROVAL_FIELDS)
        batch_start(batch=batch)
        audit_action(actor=actor, action="batch.approve", object_type="batch", object_id=batch.pk,
                     data={"total_cost": batch.total_cost, "rows": batch.valid_rows})  # fmt: skip
        _announce(batch, "batch.approved")
        batch_approval_notice(batch, "approved")
    logger.info("batch approved", extra={"event": "batch.approved", "batch_id": str(batch.pk)})
    return batch


def batch_reject(*, batch_id: Any, actor: Actor, reason: str = "", expired: bool = False) -> Batch:
    """Reject a waiting batch (or expire it: `expired=True`, by the sweep): nothing is sent and its holds are
    released; the batch ends `canceled`. Audited as `batch.reject` (or `batch.approval_expire`)."""
    decision = ApprovalStatus.EXPIRED if expired else ApprovalStatus.REJECTED
    with transaction.atomic():
        batch = batch_lock(batch_id)
        four_eyes_check(obj=batch, actor=actor)
        if not approval_decide(batch, decision=decision, actor=actor, reason=reason):
            return batch
        batch.save(update_fields=APPROVAL_FIELDS)
        batch_cancel_locked(batch=batch)
        audit_action(
            actor=actor, action="batch.approval_expire" if expired else "batch.reject", object_type="batch",
            object_id=batch.pk, data={"total_cost": batch.total_cost, "reason": batch.approval_reason},
        )  # fmt: skip
        _announce(batch, "batch.rejected")
        batch_approval_notice(batch, "expired" if expired else "rejected")
    logger.info("batch rejected", extra={"event": f"batch.{decision}", "batch_id": str(batch.pk)})
    return batch


def batch_approvals_next_expiry() -> datetime | None:
    """When batch_approvals_expire() next finds a batch in this schema (None: none waits for approval)."""
    pending = Batch.objects.filter(approval_status=ApprovalStatus.PENDING)
    expires: datetime | None = pending.aggregate(at=Min("approval_expires_at"))["at"]
    return expires


def batch_approvals_expire(*, now: datetime | None = None) -> list[str]:
    """Expire this schema's batches whose approval window has passed; returns their ids (see order_approvals_expire)."""
    now = now or timezone.now()
    due = list(
        Batch.objects.filter(approval_status=ApprovalStatus.PENDING, approval_expires_at__lte=now)
        .order_by("approval_expires_at")
        .values_list("pk", flat=True)
    )
    expired = []
    for batch_id in due:
        try:
            batch = batch_reject(batch_id=batch_id, actor=SYSTEM, reason="nobody decided in time", expired=True)
        except ApplicationError as exc:
            if exc.code != "approval_decided":
                raise
            continue
        if batch.approval_status == ApprovalStatus.EXPIRED:
            expired.append(str(batch_id))
    return expired
