"""Bulk batch tasks (queue `bulk`): ids in; the services guard on state, so a re-run is harmless."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="batches.tasks.batch_process_task",
    acks_late=True,
    autoretry_for=(OperationalError,),  # a dropped connection or a deadlock: the chunk rolled back whole
    retry_backoff=2,
    retry_jitter=True,
    max_retries=5,
)
def batch_process_task(self, batch_id: str) -> str:
    """Create the batch's orders for a while (BATCH_TASK_SECONDS, under the soft time limit), then hand the
    rest to a fresh task so one batch never holds a worker past its time limits."""
    from .processing import batch_process

    outcome = batch_process(batch_id=batch_id)
    if outcome == "more":
        batch_process_task.delay(batch_id)  # runs in this task's tenant schema, like this one
    return outcome


@shared_task(name="batches.tasks.batches_sweep")
def batches_sweep() -> int:
    """Beat: in every active tenant schema with confirmed/processing batches (tenants.due), re-queue those whose
    worker went quiet."""
    from tenants.due import BATCHES, for_each_due_tenant

    from .lifecycle import batch_requeue_stale, batches_next_stale

    queued = 0
    for _tenant in for_each_due_tenant(BATCHES, next_due=batches_next_stale, active_only=True):
        for batch_id in batch_requeue_stale():
            logger.info("batch re-queued", extra={"event": "batch.requeued", "batch_id": batch_id})
            batch_process_task.delay(batch_id)
            queued += 1
    return queued


@shared_task(name="batches.tasks.batch_approvals_expire_task")
def batch_approvals_expire_task() -> int:
    """Beat, every 5 minutes: batches nobody approved within their policy's window are canceled and their holds
    released, in every schema with one waiting (tenants.due; suspended tenants too: this only gives money back)."""
    from tenants.due import BATCH_APPROVALS, for_each_due_tenant

    from .approvals import batch_approvals_expire, batch_approvals_next_expiry

    expired = 0
    for _tenant in for_each_due_tenant(BATCH_APPROVALS, next_due=batch_approvals_next_expiry, active_only=False):
        expired += len(batch_approvals_expire())
    if expired:
        logger.info("batch approvals expired", extra={"event": "batch.approvals_expired", "count": expired})
    return expired
