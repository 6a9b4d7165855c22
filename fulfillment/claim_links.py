"""Claim links (`/r/<token>`): which tenant a token belongs to, a link for a reward that has none, and how often one
client address may ask.

Finding the reward
  Claim links live on the public host, so the token itself leads to the tenant: a public-schema index
  (tenants.ClaimTokenIndex, SHA-256 of the token → tenant schema) is written in the transaction of the
  order that creates the token. Every lookup — in the index, then `Reward.claim_token_hash` inside the
  tenant schema (fulfillment.claim_page) — is by the SHA-256 of the token through a unique/btree index, never
  a comparison with the plaintext, so timing says nothing about how close a guess was (nobody can steer a hash
  prefix). Tokens are 192 random bits (orders.claim_tokens). Per client address, 30 dead links a minute and
  the address is refused (429) until the minute ends, valid links included; all requests are capped at 300.

Dead links
  Malformed, unknown, expired, canceled and failed tokens all raise ClaimNotFound and get a 404 page. A
  malformed or unknown token learns nothing. A real token that is over (expired, canceled, failed) gets a page
  naming the company that sent it and what to do (ask them); holding the 192-bit token is proof enough to
  know that much, and a recipient with a stale link needs to know whom to ask.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import crypto, ratelimit
from core.errors import ApplicationError, NotFoundError
from orders.claim_tokens import claim_token_hash, claim_token_new, claim_tokens_register
from orders.models import RewardStatus
from orders.selectors import claim_url, reward_lock
from tenants.models import ClaimTokenIndex, Tenant

# What orders.claim_tokens.claim_token_new makes (32 url-safe characters), with room to lengthen tokens later.
CLAIM_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,86}")
# Dead links (unknown, expired, used…) per client address per minute; beyond it every claim request from the
# address gets 429 until the window ends, valid tokens included: guessing tokens stays hopeless.
CLAIM_FAILURE_LIMIT_PER_MINUTE = settings.CLAIM_FAILURE_LIMIT_PER_MINUTE
# All claim requests per client address per minute (a flood guard). Generous, because a whole office opening
# its gifts after an all-hands shares one address; misses are what the failure limit counts.
CLAIM_RATE_LIMIT_PER_MINUTE = settings.CLAIM_RATE_LIMIT_PER_MINUTE
# States in which the recipient holds the reward and has not revealed the code yet (`redeemed` reopens too).
CLAIMABLE = {RewardStatus.DELIVERED, RewardStatus.DELIVERY_FAILED, RewardStatus.OPENED}
# States whose links are dead for everyone.
DEAD = (RewardStatus.CANCELED, RewardStatus.FAILED, RewardStatus.EXPIRED)


class ClaimNotFound(Exception):
    """Any dead link: malformed, unknown, expired, canceled or failed. A real link that is over names who sent it
    (`company`, `sender`) and, if it expired, when; an unknown or malformed one carries nothing."""

    def __init__(self, *, company: str = "", sender: str = "", expired_at: datetime | None = None) -> None:
        super().__init__("claim link not valid")
        self.company = company
        self.sender = sender
        self.expired_at = expired_at


def claim_tenant_get(*, token: str) -> Tenant:
    """The tenant (live or sandbox schema) that issued `token`; ClaimNotFound for anything else."""
    if not isinstance(token, str) or not CLAIM_TOKEN_RE.fullmatch(token):
        raise ClaimNotFound
    entry = ClaimTokenIndex.objects.select_related("tenant").filter(token_hash=claim_token_hash(token)).first()
    if entry is None:
        raise ClaimNotFound
    return entry.tenant


def claim_rate_limit(*, client_ip: str) -> tuple[bool, int]:
    """Count one claim request from `client_ip`, before any lookup: (allowed, seconds until retry is useful)."""
    allowed, retry_after = ratelimit.peek(f"claimfail:{client_ip}", limit=CLAIM_FAILURE_LIMIT_PER_MINUTE, window=60)
    if not allowed:
        return False, retry_after
    return ratelimit.hit(f"claim:{client_ip}", limit=CLAIM_RATE_LIMIT_PER_MINUTE, window=60)


def claim_failure_record(*, client_ip: str) -> None:
    """A dead link was asked for from `client_ip` (counted the same whatever made it dead)."""
    ratelimit.hit(f"claimfail:{client_ip}", limit=CLAIM_FAILURE_LIMIT_PER_MINUTE, window=60)


def claim_link_issue(*, reward_id: Any) -> str:
    """A claim URL for a reward that has none yet (e.g. a physical gift whose address the recipient
    should confirm); the existing URL if it has one. Call inside the reward's tenant schema."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None:
            raise NotFoundError("No such reward.")
        if reward.status in DEAD:
            raise ApplicationError(f"A {reward.status} reward has no claim link.", code="not_claimable", status=409)
        if not reward.claim_token_encrypted:
            token = claim_token_new()
            reward.claim_token_hash = claim_token_hash(token)
            reward.claim_token_encrypted = crypto.encrypt(token)
            reward.claim_expires_at = timezone.now() + timedelta(days=settings.CLAIM_LINK_TTL_DAYS)
            reward.save(update_fields=["claim_token_hash", "claim_token_encrypted", "claim_expires_at"])
            claim_tokens_register(token_hashes=[reward.claim_token_hash])
        return claim_url(reward) or ""
