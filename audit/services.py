"""Writes to the audit log of the current schema (live or sandbox twin: whichever the action touched)."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from .actors import Actor
from .models import AuditEvent

# Keys whose values never reach the audit log, whatever a caller passes (defence in depth).
_SECRET_KEY_RE = re.compile(r"(?i)(password|secret|token|code|pin|otp|key)(?!_id$)")
REDACTED = "[redacted]"

# Rows recorded so far in this thread or task: the API base class compares the count before and after a view,
# so an API write whose service recorded its own row gets no second, generic one.
_rows_recorded: ContextVar[int] = ContextVar("audit_rows_recorded", default=0)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): (REDACTED if _SECRET_KEY_RE.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def audit_record(
    *,
    actor: Actor | str,
    action: str,
    object_type: str = "",
    object_id: object = "",
    data: dict[str, Any] | None = None,
    ip: str = "",
) -> AuditEvent:
    """Append one event to the audit log of the schema the connection is on (an Actor brings its own ip)."""
    event = audit_event_new(actor=actor, action=action, object_type=object_type, object_id=object_id, data=data, ip=ip)
    event.save(force_insert=True)
    audit_rows_added(1)
    return event


def audit_event_new(
    *,
    actor: Actor | str,
    action: str,
    object_type: str = "",
    object_id: object = "",
    data: dict[str, Any] | None = None,
    ip: str = "",
) -> AuditEvent:
    """The row audit_record writes, unsaved: for a service that writes it with its own rows in one statement
    (core.bulk.insert_together); it calls audit_rows_added() once it has."""
    if isinstance(actor, Actor):
        ip = ip or actor.ip
        actor = actor.label
    return AuditEvent(
        actor=actor[:200],
        action=action[:120],
        object_type=object_type[:60],
        object_id=str(object_id or "")[:64],
        data=_scrub(data or {}),
        ip=(ip or "")[:45],
    )


def audit_rows_added(count: int) -> None:
    """Count rows written from audit_event_new() as recorded (see audit_rows_recorded)."""
    _rows_recorded.set(_rows_recorded.get() + count)


def audit_action(
    *,
    actor: Actor | None,
    action: str,
    object_type: str = "",
    object_id: object = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent | None:
    """What a service that changes money, credentials or people calls, inside its own transaction.

    `actor=None` is set-up that nobody did (test fixtures, benchmarks) and leaves no row; every caller in the
    application passes an Actor (audit/tests/test_edges.py walks the code to hold that).
    """
    if actor is None:
        return None
    return audit_record(actor=actor, action=action, object_type=object_type, object_id=object_id, data=data)


def audit_rows_recorded() -> int:
    """How many rows this thread (or task) has recorded so far; only differences mean anything."""
    return _rows_recorded.get()
