"""Per-request / per-task context (request id, tenant, key id) that every log line carries."""

from __future__ import annotations

import contextvars
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("rp_log_context", default=None)


def bind(**values: Any) -> None:
    current = dict(_context.get() or {})
    current.update({key: value for key, value in values.items() if value is not None})
    _context.set(current)


def clear() -> None:
    _context.set({})


def current() -> dict[str, Any]:
    return dict(_context.get() or {})
