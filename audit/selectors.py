"""Reads of the audit log."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import AuditEvent


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def audit_event_list(
    *, actor: str = "", action: str = "", since: date | None = None, until: date | None = None
) -> QuerySet[AuditEvent]:
    """Newest first. `actor` and `action` match as case-insensitive substrings; `until` includes that day."""
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor__icontains=actor)
    if action:
        events = events.filter(action__icontains=action)
    if since:
        events = events.filter(created_at__gte=_day_start(since))
    if until:
        events = events.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    return events.order_by("-created_at", "-id")
