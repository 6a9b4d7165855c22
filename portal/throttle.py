"""Failed sign-in throttling (password and two-factor code) per (tenant, email) and per client IP.

Counters are fixed windows in Redis (core.ratelimit); the email is hashed so the key names hold no address.
"""

from __future__ import annotations

import hashlib

from django.conf import settings

from core import ratelimit


def _buckets(*, tenant_schema: str, email: str, ip: str) -> list[tuple[str, int]]:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"portal-login:{tenant_schema}:{digest}", settings.PORTAL_LOGIN_FAILURE_LIMIT),
        (f"portal-login-ip:{ip}", settings.PORTAL_LOGIN_IP_FAILURE_LIMIT),
    ]


def login_retry_after(*, tenant_schema: str, email: str, ip: str) -> int | None:
    """Seconds until another attempt is allowed, or None when sign-in may be tried now."""
    window = settings.PORTAL_LOGIN_FAILURE_WINDOW_SECONDS
    waits = []
    for bucket, limit in _buckets(tenant_schema=tenant_schema, email=email, ip=ip):
        allowed, retry_after = ratelimit.peek(bucket, limit=limit, window=window)
        if not allowed:
            waits.append(max(1, retry_after))
    return max(waits) if waits else None


def login_failure_record(*, tenant_schema: str, email: str, ip: str) -> None:
    window = settings.PORTAL_LOGIN_FAILURE_WINDOW_SECONDS
    for bucket, limit in _buckets(tenant_schema=tenant_schema, email=email, ip=ip):
        ratelimit.hit(bucket, limit=limit, window=window)


def password_reset_allowed(*, ip: str) -> bool:
    allowed, _ = ratelimit.hit(f"portal-reset-ip:{ip}", limit=settings.PORTAL_PASSWORD_RESET_LIMIT, window=3600)
    return allowed
