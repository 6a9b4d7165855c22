"""When an automation is due, and for whom: occurrences in each person's own time zone (else the tenant's).

A person's occurrence is due on the local day `occurrence + days_offset`, from `send_time` on that day until
its end: a run missed through downtime is caught up later the same local day, never on another. On a day
clocks spring forward the local wall clock is compared, not an instant (02:30 that never happens is due from
03:00); on a day they fall back the first 01:30 sends and the second finds the run already there.

29 February: birthdays, hire dates and attribute dates on 29 February fall on 28 February in years without one
(the HR convention of most payroll systems; never 1 March, and never skipped for three years).
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT

from people.models import Person, PersonStatus
from people.validation import timezone_ok

from .models import Automation, AutomationRun, TriggerType

DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name if name and timezone_ok(name) else "UTC")


def tenant_timezone() -> str:
    """The tenant's time zone (its live schema's setting; UTC when it has none)."""
    from tenants.selectors import tenant_current

    return getattr(tenant_current().live_tenant, "timezone", "") or "UTC"


def month_days_on(day: date) -> list[tuple[int, int]]:
    """The (month, day) pairs whose yearly occurrence falls on `day`: itself, and 29 February on 28 February of a
    year without one."""
    pairs = [(day.month, day.day)]
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        pairs.append((2, 29))
    return pairs


def send_window(occurs_on: date, automation: Automation, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """(send_at, end of that local day) as UTC instants for an occurrence in time zone `tz`."""
    send_day = occurs_on + timedelta(days=automation.days_offset)
    # Through UTC and back: a wall time that does not exist (spring forward) lands on the next real instant.
    local = datetime.combine(send_day, automation.send_time, tzinfo=tz)
    end = datetime.combine(send_day + timedelta(days=1), time(0), tzinfo=tz)
    return local.astimezone(UTC), end.astimezone(UTC)


def audience_q(audience: dict[str, Any]) -> Q:
    q = Q(status=PersonStatus.ACTIVE)
    if audience.get("department"):
        q &= Q(department__in=audience["department"])
    if audience.get("country"):
        q &= Q(country__in=[c.upper() for c in audience["country"]])
    for key, value in (audience.get("attributes") or {}).items():
        q &= Q(**{f"attributes__{key}": value})
    return q


def audience_matches(audience: dict[str, Any], person: Person) -> bool:
    """audience_q for one person already loaded (an activity's)."""
    if person.status != PersonStatus.ACTIVE:
        return False
    if audience.get("department") and person.department not in audience["department"]:
        return False
    if audience.get("country") and person.country not in [c.upper() for c in audience["country"]]:
        return False
    return all(person.attributes.get(key) == value for key, value in (audience.get("attributes") or {}).items())


def occurrence_q(automation: Automation, occurs_on: date) -> Q:
    """Whose occurrence of `automation`'s date trigger is on `occurs_on` (a local date)."""
    pairs = month_days_on(occurs_on)
    years = [int(y) for y in automation.trigger_years or []]
    if automation.trigger_type == TriggerType.BIRTHDAY:
        return _any(Q(birthday_month=m, birthday_day=d) for m, d in pairs)
    if automation.trigger_type == TriggerType.WORK_ANNIVERSARY:
        q = _any(Q(hire_date__month=m, hire_date__day=d) for m, d in pairs)
        if years:
            return q & Q(hire_date__year__in=[occurs_on.year - y for y in years])
        return q & Q(hire_date__year__lt=occurs_on.year)  # every anniversary, not the first day
    if automation.trigger_type == TriggerType.DATE_ATTRIBUTE:
        q = Q(attribute_date__regex=DATE_TEXT) & _any(Q(attribute_date__endswith=f"-{m:02d}-{d:02d}") for m, d in pairs)
        if years:
            return q & _any(Q(attribute_date__startswith=f"{occurs_on.year - y:04d}-") for y in years)
        return q & Q(attribute_date__lte=f"{occurs_on.year:04d}-12-31")
    raise ValueError(f"{automation.trigger_type} is not a date trigger")


def _any(queries: Iterator[Q] | Any) -> Q:
    result = Q(pk__in=[])
    for q in queries:
        result |= q
    return result


def years_since(automation: Automation, person: Person | None, occurs_on: date) -> int | None:
    """The anniversary being celebrated (years of service, age when the year of birth is known)."""
    if person is None:
        return None
    start: date | None = None
    if automation.trigger_type == TriggerType.WORK_ANNIVERSARY:
        start = person.hire_date
    elif automation.trigger_type == TriggerType.BIRTHDAY and person.birthday_year:
        return occurs_on.year - person.birthday_year
    elif automation.trigger_type == TriggerType.DATE_ATTRIBUTE:
        text = str(person.attributes.get(automation.trigger_attribute, ""))
        start = date.fromisoformat(text) if re.match(DATE_TEXT, text) else None
    return occurs_on.year - start.year if start else None


def candidates(automation: Automation, occurs_on: date, zones: list[str]) -> QuerySet[Person]:
    """Active people in the audience, with a time zone in `zones` ("" = the tenant's), whose occurrence is on
    `occurs_on` and who have no run for it yet."""
    people = Person.objects.all()
    if automation.trigger_type == TriggerType.DATE_ATTRIBUTE:
        people = people.annotate(attribute_date=KT(f"attributes__{automation.trigger_attribute}"))
    already = AutomationRun.objects.filter(
        automation=automation, person=OuterRef("pk"), occurrence=occurs_on.isoformat()
    )
    return (
        people.filter(audience_q(automation.audience), occurrence_q(automation, occurs_on), timezone__in=zones)
        .exclude(Exists(already))
        .order_by("pk")
    )


def zone_groups() -> dict[str, list[str]]:
    """Effective time zone → the `timezone` values of people that resolve to it ("" resolves to the tenant's)."""
    groups: dict[str, list[str]] = defaultdict(list)
    tenant_zone = tenant_timezone()
    names = Person.objects.order_by().values_list("timezone", flat=True).distinct()
    for name in {*names, ""}:
        groups[name if name and timezone_ok(name) else tenant_zone].append(name)
    return dict(groups)


@dataclass(frozen=True)
class Due:
    person_id: UUID
    occurs_on: date
    send_at: datetime
    retry_until: datetime


def due_now(automation: Automation, now: datetime) -> Iterator[Due]:
    """Everyone `automation` should have sent to by `now` on their current local day and has not."""
    for zone_name, values in zone_groups().items():
        tz = zone(zone_name)
        local_now = now.astimezone(tz)
        if local_now.time() < automation.send_time:
            continue  # not yet time today in this zone (yesterday's are not caught up)
        occurs_on = local_now.date() - timedelta(days=automation.days_offset)
        send_at, retry_until = send_window(occurs_on, automation, tz)
        for person_id in candidates(automation, occurs_on, values).values_list("pk", flat=True).iterator(2000):
            yield Due(person_id, occurs_on, send_at, retry_until)


def upcoming(automation: Automation, now: datetime, days: int, person_id: Any = None) -> list[dict[str, Any]]:
    """Who `automation` will send to in the next `days` days (or only `person_id`), when (send_at ascending),
    not counting those it already sent to. Activity triggers cannot be foreseen: empty."""
    if automation.trigger_type == TriggerType.ACTIVITY or not automation.enabled:
        return []
    items = []
    for zone_name, values in zone_groups().items():
        tz = zone(zone_name)
        today = now.astimezone(tz).date()
        for offset in range(days):
            occurs_on = today + timedelta(days=offset) - timedelta(days=automation.days_offset)
            send_at, _ = send_window(occurs_on, automation, tz)
            people = candidates(automation, occurs_on, values)
            if person_id is not None:
                people = people.filter(pk=person_id)
            for person in people.only("id", "name", "hire_date", "birthday_year", "attributes"):
                items.append({"person": person, "occurs_on": occurs_on, "send_at": send_at,
                              "years": years_since(automation, person, occurs_on)})  # fmt: skip
    return sorted(items, key=lambda item: (item["send_at"], str(item["person"].pk)))
