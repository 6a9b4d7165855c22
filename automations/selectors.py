"""Reads of automations and their runs, their API representation, and the preview (who, when, at what cost)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFoundError
from core.money import format_amount

from .models import Automation, AutomationRun, TriggerType
from .running import RUNS_VERSION, reward_value
from .schedule import upcoming

MAX_PREVIEW_DAYS = 90


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def automation_render(automation: Automation) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": automation.trigger_type}
    if automation.trigger_type in (TriggerType.WORK_ANNIVERSARY, TriggerType.DATE_ATTRIBUTE):
        trigger["years"] = list(automation.trigger_years)
    if automation.trigger_type == TriggerType.DATE_ATTRIBUTE:
        trigger["attribute"] = automation.trigger_attribute
    if automation.trigger_type == TriggerType.ACTIVITY:
        trigger["activity_type"] = automation.trigger_activity_type
    return {
        "id": str(automation.id),
        "name": automation.name,
        "trigger": trigger,
        "audience": automation.audience,
        "reward": _reward(automation),
        "send_time": automation.send_time.strftime("%H:%M"),
        "days_offset": automation.days_offset,
        "program": automation.program.slug if automation.program is not None else None,
        "enabled": automation.enabled,
        "created_at": _iso(automation.created_at),
        "updated_at": _iso(automation.updated_at),
    }


def _reward(automation: Automation) -> dict[str, Any]:
    if automation.points is not None:
        program = automation.program.slug if automation.program is not None else None
        return {"points": automation.points, "program": program, "message": automation.message}
    return {
        "product_id": str(automation.product_id),
        "amount": format_amount(automation.amount, automation.currency),
        "currency": automation.currency,
        "delivery_method": automation.delivery_method,
        "message": automation.message,
    }


def automation_list(*, enabled: bool | None = None, trigger: str | None = None) -> QuerySet[Automation]:
    qs = Automation.objects.select_related("program")
    if enabled is not None:
        qs = qs.filter(enabled=enabled)
    if trigger:
        qs = qs.filter(trigger_type=trigger)
    return qs


def automation_get(*, automation_id: Any) -> Automation:
    automation = Automation.objects.select_related("program").filter(pk=automation_id).first()
    if automation is None:
        raise NotFoundError("No such automation.")
    return automation


def automation_preview(*, automation: Automation, now: datetime, days: int) -> dict[str, Any]:
    """Who the automation will send to over the next `days` days (at most MAX_PREVIEW_DAYS), when, and the total
    face value: what the preview endpoint and the portal's upcoming list show."""
    items = upcoming(automation, now, min(max(days, 1), MAX_PREVIEW_DAYS))
    value = reward_value(automation)
    if automation.points is not None:
        total: dict[str, Any] = {"points": automation.points * len(items)}
    else:
        total = {"amount": format_amount(automation.amount * len(items), automation.currency),
                 "currency": automation.currency}  # fmt: skip
    return {
        "items": [
            {
                "person_id": str(item["person"].pk),
                "name": item["person"].name,
                "occurs_on": item["occurs_on"].isoformat(),
                "send_at": _iso(item["send_at"]),
                "years": item["years"],
                **value,
            }
            for item in items
        ],
        "total": total,
    }


# The Automations list's per-row summary (how many sends, what cost, in the next N days) is cached: computing it
# reads the people directory once per zone and day of the window (30+ queries per automation). A key holds every
# input: the automation as last changed, the people and run counters (core.versions, bumped by every change of
# people and every claimed run), the tenant's zone and the UTC hour (the window slides; hourly covers whole-hour
# zones' midnights). The TTL only bounds how long a lost bump (cache down at commit) could leave a count stale.
UPCOMING_SUMMARY_TTL_SECONDS = 3600


def _summary_key(automation: Automation, now: datetime, days: int) -> str | None:
    from core.versions import version_get
    from people.services import PEOPLE_VERSION
    from tenants.selectors import tenant_current

    people, runs = version_get(PEOPLE_VERSION), version_get(RUNS_VERSION)
    if people is None or runs is None:
        return None
    zone = getattr(tenant_current(), "timezone", "") or "UTC"
    hour = now.strftime("%Y%m%d%H")
    stamp = automation.updated_at.timestamp()
    return f"automation-upcoming:{automation.pk}:{stamp}:{people}:{runs}:{zone}:{hour}:{days}"


def automation_upcoming_summary(*, automation: Automation, now: datetime, days: int) -> dict[str, Any]:
    """How many sends the automation's preview holds and their total (automation_preview's `total`), from the cache
    when nothing it depends on changed since it was computed (see above)."""
    from django.core.cache import cache

    key = _summary_key(automation, now, days)
    try:
        cached = cache.get(key) if key is not None else None
    except Exception:  # Redis down: computed below, as without a cache
        cached = None
    if cached is not None:
        return dict(cached)
    preview = automation_preview(automation=automation, now=now, days=days)
    summary = {"count": len(preview["items"]), "total": preview["total"]}
    if key is not None:
        with contextlib.suppress(Exception):  # not kept: the next view computes it again
            cache.set(key, summary, timeout=UPCOMING_SUMMARY_TTL_SECONDS)
    return summary


def automation_run_list(
    *, automation_id: Any = None, person_id: Any = None, status: str | None = None
) -> QuerySet[AutomationRun]:
    qs = AutomationRun.objects.select_related("automation", "person")
    if automation_id:
        qs = qs.filter(automation_id=automation_id)
    if person_id:
        qs = qs.filter(person_id=person_id)
    if status:
        qs = qs.filter(status=status)
    return qs
