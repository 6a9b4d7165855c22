"""Per-key request rate limit in Redis (fixed one-minute window)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from core import ratelimit


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        key = getattr(request, "api_key", None)
        if key is None:
            return True
        allowed, self._wait = ratelimit.hit(f"key:{key.key_id}", limit=settings.API_RATE_LIMIT_PER_MINUTE, window=60)
        return allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_wait", 60))
