"""Idempotency-Key handling for order creation: the request hash, the per-key lock, replay and purge.

A key is locked for the length of the creating transaction (a transaction-level advisory lock, per schema),
so two requests with one key never both create; once committed, the stored response is replayed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.db import connection
from core.errors import ApplicationError
from core.precompiled import Precompiled

from .models import IdempotencyRecord


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _lock_try(key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"{connection.schema_name}:idem:{key}"]
        )
        return bool(cursor.fetchone()[0])


def idempotency_begin(*, key: str, body_hash: str) -> IdempotencyRecord | None:
    """Lock `key` until the current transaction ends; the stored record when the request was already made.

    A request still in flight under the same key (409, retryable) or an earlier one with another body (422)
    raises ApplicationError. Call inside the transaction that writes the record.
    """
    if not _lock_try(key):
        raise ApplicationError(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            code="idempotency_key_in_flight",
            status=409,
            retryable=True,
        )
    return idempotency_replay(key=key, body_hash=body_hash)


# Looked up by every order that carries a key: compiled once per process (core.precompiled).
_RECORD_BY_KEY: Precompiled[IdempotencyRecord] = Precompiled(
    lambda key: IdempotencyRecord.objects.filter(key=key).order_by("pk")[:1], markers=["\x00idempotency-key"]
)


def idempotency_replay(*, key: str, body_hash: str) -> IdempotencyRecord | None:
    record = _RECORD_BY_KEY.first(key)
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise ApplicationError(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
            status=422,
        )
    return record


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_KEY_TTL)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def idempotency_next_purge() -> datetime | None:
    """When the current schema's oldest record may be purged (created_at + IDEMPOTENCY_KEY_TTL), or None when it
    has none: the hourly purge visits a schema only from then on (tenants.due, kind `idempotency`; a new record
    notes its schema). A TTL lowered later takes effect at that time, not before."""
    oldest = IdempotencyRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return None if oldest is None else oldest + settings.IDEMPOTENCY_KEY_TTL
