"""API keys (with their tenant and its live twin) cached per process, dropped everywhere when any of them changes.

Without the cache, every API request starts with two PostgreSQL statements in the public schema before any of
its tenant's: the key lookup and django-tenants' `SET search_path` (2 of an order's 16, bench/PROFILE-orders.md).
With it, a request reads one Redis value instead: the stamp. Every change to a key or a tenant row sets a new
random stamp (`keys_changed`), and an entry cached under another stamp is read again from the database, so a
revoked key, a suspended tenant or an edited setting takes effect on the next request in every process.

The stamp is set twice: at once, so this process and this transaction see the change, and again after commit,
because another process may have re-read the old row (the change not yet committed) under the first new stamp.
It is random rather than a counter so that a Redis that lost its data cannot bring an old stamp back. Without
Redis nothing is cached, and an entry older than MAX_AGE is read again in any case (a stamp write lost to a
Redis failure). Keys change through tenants.services and tenants.tenant_settings, which call `keys_changed`;
`Model.save()`/`delete()` elsewhere (the operator admin) are caught by the signals wired in TenantsConfig.ready.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from django.db import transaction

from core.redis import get_redis

logger = logging.getLogger(__name__)

STAMP_KEY = "tenants:keys-stamp"
MAX_AGE = 60.0  # seconds; only matters when a stamp write failed

Row = tuple[Any, ...]
_entries: dict[str, tuple[bytes | str, float, Row]] = {}  # key_id -> (stamp, monotonic time read, database row)


def _stamp() -> bytes | str | None:
    """The current stamp (created if Redis has none), or None when Redis cannot be reached: do not cache."""
    try:
        client = get_redis()
        stamp: bytes | str | None = client.get(STAMP_KEY)
        if stamp is None:
            client.set(STAMP_KEY, uuid.uuid4().hex, nx=True)
            stamp = client.get(STAMP_KEY)
        return stamp
    except redis.RedisError:
        return None


def key_row(key_id: str, load: Callable[[str], Row | None]) -> Row | None:
    """The database row of `key_id` as `load` reads it, from this process's cache while nothing has changed."""
    stamp = _stamp()  # read BEFORE the row: a change committed in between leaves the entry already stale
    entry = _entries.get(key_id)
    if stamp is not None and entry is not None and entry[0] == stamp and time.monotonic() - entry[1] < MAX_AGE:
        return entry[2]
    row = load(key_id)
    if stamp is not None and row is not None:
        _entries[key_id] = (stamp, time.monotonic(), row)
    return row


def key_cache_clear() -> None:
    """Forget every entry of this process (tests: a rolled-back change never set a new stamp)."""
    _entries.clear()


def key_forget(key_id: str) -> None:
    """Drop one key's entry in this process (its own write, e.g. last_used_at, made the row out of date)."""
    _entries.pop(key_id, None)


def _new_stamp() -> None:
    try:
        get_redis().set(STAMP_KEY, uuid.uuid4().hex)
    except redis.RedisError:
        # Other processes keep their entries for at most MAX_AGE; this one forgets its own now.
        logger.warning("api key cache stamp not updated", extra={"event": "api_key_cache.stamp_failed"})
    _entries.clear()


def keys_changed(**_: Any) -> None:
    """Call when a key or tenant row changes (also a signal receiver): now, and again after commit."""
    _new_stamp()
    transaction.on_commit(_new_stamp)
