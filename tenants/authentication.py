"""API authentication: DRF's view of the credential the routing middleware resolved, and the failed-credential
throttle shared by the middleware and the token endpoint.

The throttle counts guesses, not clients. A guess is a credential whose secret did not verify (code
`invalid_credentials`: a malformed or unknown key, a wrong secret, a forged token). Each is counted per client
address and per presented key id (the non-secret `rp_live_<key id>_` part: a guess at a key's secret must name
that key id, so its bucket holds every guess at that key, from any address). Over AUTH_FAILURE_LIMIT in a
window, a *failing* request is answered 429 with Retry-After instead of 401. The check comes after the
credential check, so a valid credential is never refused: behind a proxy every client may share one address
(TRUSTED_PROXY_COUNT), and a key id is not secret, so refusing before the check let anyone lock good clients
out. The cost: a throttled guess still costs its one indexed key lookup, as a valid request does. A
credential whose secret verified but is refused (revoked, expired, suspended tenant, address not allowed)
is not a guess: it is answered with its own error and not counted.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.authentication import BaseAuthentication

from core import ratelimit

from .services import KEY_RE

GUESS_CODES = frozenset({"invalid_credentials"})  # CredentialError codes raised when a secret did not verify


class ApiPrincipal:
    """What `request.user` is for an API call: the key, never a person."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key) -> None:
        self.key = key
        self.pk = None

    def __str__(self) -> str:
        return f"api-key:{self.key.key_id}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = getattr(request._request, "api_key", None)
        if key is None:
            return None
        request.api_key = key
        request.tenant = key.tenant
        return ApiPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return "Bearer"


def presented_key_id(credential: str | None) -> str | None:
    """The key id of a key-shaped credential (not its secret), None for tokens and anything else."""
    match = KEY_RE.match(credential or "")
    return match.group(2) if match else None


def credential_failure_record(*, client_ip: str, key_id: str | None) -> int | None:
    """Count one guess for the address and the presented key id. Returns the Retry-After seconds when either
    is now over AUTH_FAILURE_LIMIT (answer 429), None when the caller answers the failure itself."""
    buckets = [f"authfail:ip:{client_ip}"] + ([f"authfail:key:{key_id}"] if key_id else [])
    allowed, retry_after = ratelimit.hit_all(
        buckets, limit=settings.AUTH_FAILURE_LIMIT, window=settings.AUTH_FAILURE_WINDOW_SECONDS
    )
    return None if allowed else max(1, retry_after)


def address_failures_exceeded(client_ip: str) -> int | None:
    """Retry-After seconds when this address is over its guess budget (for a request with no credential at
    all, which is answered 429 then rather than 401), else None. Counts nothing."""
    allowed, retry_after = ratelimit.peek(
        f"authfail:ip:{client_ip}", limit=settings.AUTH_FAILURE_LIMIT, window=settings.AUTH_FAILURE_WINDOW_SECONDS
    )
    return None if allowed else max(1, retry_after)


def too_many_failures_response(retry_after: int, *, extensions: dict | None = None):
    # imported here: core.problems imports DRF's views, which import this module (DEFAULT_AUTHENTICATION_CLASSES)
    from core.problems import problem_response

    return problem_response(
        status=429,
        code="too_many_failed_attempts",
        detail="Too many failed authentication attempts from this address or for this key; try again later. "
        "A valid credential is not refused.",
        retryable=True,
        extensions=extensions,
        headers={"Retry-After": str(max(1, retry_after))},
    )
