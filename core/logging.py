"""Structured logging: one JSON object per line, with request/task context, and secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from core import context

# Anything that looks like a credential, a gift card code field or a claim token is replaced before output.
_SECRET_PATTERNS = [
    (re.compile(r"rp_(live|test)_[a-z0-9]{12}_[A-Za-z0-9_-]+"), r"rp_\1_[REDACTED]"),
    (re.compile(r"rp_at_[A-Za-z0-9_:.\-]+"), "rp_at_[REDACTED]"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[REDACTED]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1[REDACTED]"),
    (
        re.compile(r"(?i)(\"?(?:code|pin|password|secret|client_secret|token)\"?\s*[:=]\s*\"?)[^\s\",}]+"),
        r"\1[REDACTED]",
    ),
    (re.compile(r"/r/[A-Za-z0-9_-]{16,}"), "/r/[REDACTED]"),
]
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    """An extra attribute with every string in it redacted; an object the JSON line would str() is str()ed here."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    return redact(value if isinstance(value, str) else str(value))


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in context.current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactSecretsFilter(logging.Filter):
    """Scrubs the formatted message and every extra attribute (nested ones too); runs on every handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        data = getattr(record, "data", None)
        if record.name.startswith("celery.") and isinstance(data, dict):
            # Celery's own lines (task received, task failed) carry the task's arguments in `data`; ours never
            # log arguments (the task id finds them).
            record.data = {key: value for key, value in data.items() if key not in ("args", "kwargs")}
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                setattr(record, key, _redact_value(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)
