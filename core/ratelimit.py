"""Fixed-window counters in Redis for per-key rate limits and credential brute-force throttling.

Redis down must not take the API down: the limiter then fails open and logs a warning.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def hit(bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
    """Count one event in `bucket`; return (allowed, seconds until the window resets)."""
    return hit_all([bucket], limit=limit, window=window)


def hit_all(buckets: list[str], *, limit: int, window: int) -> tuple[bool, int]:
    """Count one event in each bucket (one round trip); return (every bucket within `limit`, seconds until
    the window resets)."""
    now = int(time.time())
    window_start = now - now % window
    try:
        pipe = get_redis().pipeline()
        for bucket in buckets:
            key = f"rl:{bucket}:{window_start}"
            pipe.incr(key)
            pipe.expire(key, window + 1)
        counts = pipe.execute()[::2]
    except redis.RedisError:
        logger.warning("rate limiter unavailable; allowing request", extra={"event": "ratelimit.unavailable"})
        return True, 0
    return all(count <= limit for count in counts), window_start + window - now


def peek(bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
    """Whether `bucket` is already over its limit, without counting."""
    now = int(time.time())
    window_start = now - now % window
    try:
        count = int(get_redis().get(f"rl:{bucket}:{window_start}") or 0)
    except redis.RedisError:
        return True, 0
    return count < limit, window_start + window - now
