"""Writes to the audit log of the current schema (live or sandbox twin: whichever the action touched)."""

from __future__ import annotations

import re
from typing import Any

from .models import AuditEvent

# Keys whose values never reach the audit log, whatever a caller passes (defence in depth).
_SECRET_KEY_RE = re.compile(r"(?i)(password|secret|token|code|pin|otp|key)(?!_id$)")
REDACTED = "[redacted]"


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
    actor: str,
    action: str,
    object_type: str = "",
    object_id: object = "",
    data: dict[str, Any] | None = None,
    ip: str = "",
) -> AuditEvent:
    """Append one event to the audit log of the schema the connection is on."""
    return AuditEvent.objects.create(
        actor=actor[:200],
        action=action[:120],
        object_type=object_type[:60],
        object_id=str(object_id or "")[:64],
        data=_scrub(data or {}),
        ip=(ip or "")[:45],
    )
