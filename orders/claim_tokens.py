"""Claim tokens: the secret in a reward's claim link, and the public-schema index that finds its tenant.

A token is 192 random bits; only its SHA-256 is stored (on the reward, and in tenants.ClaimTokenIndex, which
maps the hash to the tenant schema because the claim page arrives on the public host with only a token).
The index row is written in the transaction that creates the token, so a committed link is always findable.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from core.bulk import copy_insert
from core.db import connection
from tenants.models import ClaimTokenIndex

from .models import DeliveryMethod, OrderType

if TYPE_CHECKING:
    from programs.models import Program

CLAIM_METHODS = (DeliveryMethod.LINK, DeliveryMethod.EMAIL, DeliveryMethod.SMS)


def gets_claim_link(*, order_type: str, delivery_method: str, product_type: str) -> bool:
    """Whether a reward is sent as a claim link: link orders, and choice products (the recipient picks)."""
    return delivery_method in CLAIM_METHODS and (order_type == OrderType.LINK or product_type == "choice")


def claim_deadline(
    *, now: datetime, program: Program | None, deliver_at: datetime | None, claim_by: datetime | None
) -> datetime:
    """The claim-by moment of a new link: the order's `claim_by` if given, else the program's `claim_days`
    (else CLAIM_LINK_TTL_DAYS) counted from when the link goes out."""
    if claim_by is not None:
        return claim_by
    days = program.claim_days if program is not None and program.claim_days else settings.CLAIM_LINK_TTL_DAYS
    return max(now, deliver_at or now) + timedelta(days=days)


def claim_token_new() -> str:
    return secrets.token_urlsafe(24)  # 192 bits, 32 url-safe characters


def claim_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _tenant_id() -> int:
    tenant_id: int | None = getattr(connection.tenant, "pk", None)  # a FakeTenant (public schema) has none
    if tenant_id is None:
        raise RuntimeError("claim tokens are created inside a tenant schema")
    return tenant_id


def claim_tokens_register(*, token_hashes: list[str]) -> None:
    """Index new claim tokens (by hash) under the current tenant schema; call inside the order's transaction.

    Runs in the tenant's schema: django-tenants puts `public` on the search_path after the tenant schema,
    and the index table exists only in public, so the insert lands there, in the same transaction.
    """
    if not token_hashes:
        return
    tenant_id = _tenant_id()
    ClaimTokenIndex.objects.bulk_create([ClaimTokenIndex(token_hash=h, tenant_id=tenant_id) for h in token_hashes])


def claim_tokens_copy(token_hashes: list[str]) -> None:
    """claim_tokens_register with one COPY, for bulk batches (no model instance per token)."""
    tenant_id = _tenant_id()
    copy_insert(ClaimTokenIndex, ["token_hash", "tenant_id"], ((token_hash, tenant_id) for token_hash in token_hashes))
