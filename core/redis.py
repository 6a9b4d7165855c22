"""The application's Redis client (rate limits, flags, heartbeats, fault points): one per process, built once.

Short socket timeouts: every caller treats Redis as best-effort or reports it unreachable (the limiter fails
open, a webhook drain flag falls back to publishing, /readyz says which store is down), so a Redis outage
costs a request half a second, not a hung worker. The client is thread-safe (a connection pool), so the
webhook send threads and a drain's own thread share it.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
