"""Time zones people choose (a tenant's, later a person's): IANA names checked against the zone database (the pinned
tzdata package, so a slim image without /usr/share/zoneinfo knows them too), and wall-clock times read in a zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    # "localtime" and the like are the server's own file, not a place: only names of the form Area/Location and
    # the fixed UTC aliases are offered.
    return frozenset(name for name in available_timezones() if "/" in name or name == "UTC")


def zone_valid(name: object) -> bool:
    return isinstance(name, str) and name in zone_names()


def zone_get(name: str) -> ZoneInfo:
    """The zone named `name`; UTC for a name the database does not know (a row written before validation)."""
    return ZoneInfo(name) if zone_valid(name) else ZoneInfo("UTC")


def wall_time_exists(value: datetime, zone: ZoneInfo) -> bool:
    """Whether a naive wall-clock time happens in `zone` (02:30 on the night clocks go forward does not)."""
    aware = value.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == value.replace(tzinfo=None)


def zone_label(name: str, *, at: datetime | None = None) -> str:
    """How the portal names a zone: 'Asia/Kuala_Lumpur (UTC+08:00)' — the offset in force at `at` (now)."""
    moment = (at or datetime.now(UTC)).astimezone(zone_get(name))
    offset = moment.strftime("%z")
    return f"{zone_get(name).key} (UTC{offset[:3]}:{offset[3:]})"
