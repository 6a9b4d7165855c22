"""Points housekeeping run by beat (queue `default`): expiry notices and expiry, in every schema."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="points.tasks.points_expiry_sweep")
def points_expiry_sweep() -> int:
    """Beat, hourly: notices for awards about to expire, then expire due ones, in every tenant schema with awards
    that can still expire (tenants.due).

    Suspended tenants too: expiry releases held money back to the tenant; it starts nothing.
    """
    from tenants.due import POINTS, for_each_due_tenant

    from .expiry import points_expire_due, points_expiry_next_due, points_expiry_notify

    expired = 0
    for _tenant in for_each_due_tenant(POINTS, next_due=points_expiry_next_due, active_only=False):
        points_expiry_notify()
        expired += points_expire_due()
    if expired:
        logger.info("points expired", extra={"event": "points.expiry_sweep", "points": expired})
    return expired
