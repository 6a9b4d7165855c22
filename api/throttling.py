"""Per-key request rate limit in Redis (fixed one-minute window)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from core import ratelimit

if TYPE_CHECKING:  # DRF's settings import these modules while rest_framework.views loads
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: APIView) -> bool:
        key = getattr(request, "api_key", None)
        if key is None:
            return True
        allowed, self._wait = ratelimit.hit(f"key:{key.key_id}", limit=settings.API_RATE_LIMIT_PER_MINUTE, window=60)
        return allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_wait", 60))
