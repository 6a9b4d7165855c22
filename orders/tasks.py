"""Order housekeeping run by beat (queue `default`)."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="orders.tasks.idempotency_purge_task")
def idempotency_purge_task() -> int:
    """Beat, hourly: forget Idempotency-Key outcomes older than IDEMPOTENCY_KEY_TTL_HOURS, in every schema whose
    oldest record is that old (tenants.due).

    A replayed response holds the order as it was answered, claim links included: kept no longer than promised.
    Suspended tenants too (this finishes nothing and starts nothing; it only deletes).
    """
    from tenants.due import IDEMPOTENCY, for_each_due_tenant

    from .idempotency import idempotency_next_purge, idempotency_purge

    purged = 0
    for _tenant in for_each_due_tenant(IDEMPOTENCY, next_due=idempotency_next_purge, active_only=False):
        purged += idempotency_purge()
    if purged:
        logger.info("idempotency records purged", extra={"event": "idempotency.purged", "count": purged})
    return purged


@shared_task(name="orders.tasks.rewards_expire_task")
def rewards_expire_task() -> int:
    """Beat: in every tenant schema with delivered rewards (tenants.due), expire unclaimed claim links past their
    claim-by date (orders.expiry).

    Suspended tenants too: this starts nothing for the tenant; it ends links that are over and gives the
    unclaimed value back. Two sweeps at once are harmless (each reward is decided under its row lock)."""
    from tenants.due import EXPIRY, for_each_due_tenant

    from .expiry import rewards_expire, rewards_next_expiry

    expired = 0
    for _tenant in for_each_due_tenant(EXPIRY, next_due=rewards_next_expiry, active_only=False):
        expired += rewards_expire()
    if expired:
        logger.info("claim links expired", extra={"event": "rewards.expired", "count": expired})
    return expired


@shared_task(name="orders.tasks.order_approvals_expire_task")
def order_approvals_expire_task() -> int:
    """Beat, every 5 minutes: orders nobody approved within their policy's window are canceled and their funds
    released, in every schema with one waiting (tenants.due; suspended tenants too: this only gives money back)."""
    from tenants.due import ORDER_APPROVALS, for_each_due_tenant

    from .approvals import order_approvals_expire, order_approvals_next_expiry

    expired = 0
    for _tenant in for_each_due_tenant(ORDER_APPROVALS, next_due=order_approvals_next_expiry, active_only=False):
        expired += len(order_approvals_expire())
    if expired:
        logger.info("order approvals expired", extra={"event": "order.approvals_expired", "count": expired})
    return expired


@shared_task(name="orders.tasks.rollups_compact_task")
def rollups_compact_task() -> int:
    """Beat, every minute: fold the dashboard, report and statement rollups' pending deltas in, in every schema that
    has some (tenants.due).

    Readers are exact without it (they add the pending deltas); it keeps what they add small. Suspended tenants
    too: it only tidies what their past changes wrote.
    """
    from funds.statements import ledger_days_compact
    from tenants.due import ROLLUPS, for_each_due_tenant

    from .rollups import rollups_compact, rollups_next_due

    folded = 0
    for _tenant in for_each_due_tenant(ROLLUPS, next_due=rollups_next_due, active_only=False):
        folded += sum(rollups_compact()) + ledger_days_compact()
    return folded


@shared_task(name="orders.tasks.reward_totals_rebuild_task")
def reward_totals_rebuild_task() -> int:
    """Beat, hourly: recompute every schema's all-time reward totals (the dashboard's) from the hourly rollup
    (orders.rollups.reward_totals_rebuild); returns how many schemas were rebuilt. A few milliseconds each."""
    from tenants.selectors import for_each_tenant

    from .rollups import reward_totals_rebuild

    return sum(1 for _tenant in for_each_tenant(active_only=False) if reward_totals_rebuild())


@shared_task(name="orders.tasks.recipient_retention_task")
def recipient_retention_task() -> int:
    """Beat, hourly: in every tenant schema with a retention period (people.PrivacySettings), anonymise the
    recipient details of rewards delivered longer ago than that (orders.erasure.rewards_anonymise_delivered)."""
    from tenants.selectors import for_each_tenant

    from .erasure import rewards_anonymise_delivered

    anonymised = 0
    for _tenant in for_each_tenant(active_only=False):
        anonymised += rewards_anonymise_delivered()
    if anonymised:
        logger.info("recipients anonymised", extra={"event": "rewards.anonymised", "count": anonymised})
    return anonymised


@shared_task(name="orders.tasks.approval_notice_task")
def approval_notice_task(payload: dict) -> int:
    """After an approval request or decision committed: email the approvers, or whoever asked
    (orders.approval_notices). Not retried: a retry would email again whoever already got it."""
    from .approval_notices import approval_notice_send

    return approval_notice_send(payload)
