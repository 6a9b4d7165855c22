"""Order housekeeping run by beat (queue `default`)."""

from __future__ import annotations

import logging
from datetime import datetime

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
    """Beat, hourly: recompute the all-time reward totals (the dashboard's) from the hourly rollup
    (orders.rollups.reward_totals_rebuild) in every schema whose hourly rollup changed since its last rebuild, and
    in those whose safety-net slot came (REWARD_TOTALS_RECOMPUTE_SECONDS, an even share each hour) (tenants.due);
    returns how many schemas were rebuilt. A few milliseconds each. Suspended tenants too: it only tidies."""
    from tenants.due import TOTALS, for_each_due_tenant

    from .rollups import reward_totals_next_due, reward_totals_rebuild

    visit = {"rebuilt": True}  # this visit's outcome: next_due runs after the loop's body, in the same schema

    def next_due() -> datetime:
        return reward_totals_next_due(retry=not visit["rebuilt"])  # a compaction was running: due again now

    rebuilt = 0
    for _tenant in for_each_due_tenant(TOTALS, next_due=next_due, active_only=False):
        visit["rebuilt"] = reward_totals_rebuild()
        rebuilt += visit["rebuilt"]
    return rebuilt


@shared_task(name="orders.tasks.recipient_retention_task")
def recipient_retention_task() -> int:
    """Beat, hourly: anonymise the recipient details of rewards delivered longer ago than the tenant's retention
    period (people.PrivacySettings; orders.erasure.rewards_anonymise_delivered), in every schema where one is due
    (tenants.due: a delivery or a settings change notes the schema, and a visit leaves it due when its earliest
    delivery not yet anonymised falls due). Suspended tenants too: it only removes data."""
    from tenants.due import RETENTION, for_each_due_tenant

    from .erasure import rewards_anonymise_delivered, rewards_next_anonymisation

    anonymised = 0
    for _tenant in for_each_due_tenant(RETENTION, next_due=rewards_next_anonymisation, active_only=False):
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
