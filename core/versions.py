"""Change counters for caches: a number per (schema, name) that writers bump after they commit and readers put in
their cache keys, so a cached read built from a table is dropped the moment the table changes, without the
writer knowing which caches exist (a lower layer bumps, a higher one reads).

Kept in Redis under the schema read when the change is made (an after-commit callback may run after the
connection left the schema). Redis unavailable: a bump is lost and a read answers None, which callers treat as
"do not cache" — a cache is never trusted without its version, and carries a TTL for a bump that was lost.
"""

from __future__ import annotations

import logging
import time

from django.db import transaction

from core.db import connection
from core.redis import get_redis

logger = logging.getLogger(__name__)


def _key(schema: str, name: str) -> str:
    return f"rp:version:{schema}:{name}"


def version_get(name: str) -> int | None:
    """The current counter of `name` in this schema; None when Redis is down."""
    key = _key(connection.schema_name, name)
    try:
        client = get_redis()
        # A counter's first value is the clock in nanoseconds: one that was evicted and starts again never
        # repeats a value an older cache key was built with.
        client.set(key, time.time_ns(), nx=True)
        value = client.get(key)
    except Exception:
        logger.warning("redis unavailable: version not read", extra={"event": "cache.unavailable", "version": name})
        return None
    return int(value) if value is not None else None


def version_bump(name: str) -> None:
    """Count a change of `name` in this schema once the current transaction commits (a rolled-back change bumps
    nothing)."""
    key = _key(connection.schema_name, name)
    transaction.on_commit(lambda: _bump(key, name), robust=True)


def _bump(key: str, name: str) -> None:
    try:
        client = get_redis()
        if not client.set(key, time.time_ns(), nx=True):
            client.incr(key)
    except Exception:
        logger.warning("redis unavailable: version not bumped", extra={"event": "cache.unavailable", "version": name})
