"""A web process does its first request's one-time work when it loads the application (rewards_portal.warmup)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import rewards_portal.wsgi
from django.urls import resolve, reverse
from django.utils import translation
loaded = set(sys.modules)
for path in ("/api/v1/orders", "/api/v1/products", "/r/abc", "/p/", "/console/", "/admin/", "/"):
    try:
        resolve(path)
    except Exception:
        pass
for language in ("en", "ms"):
    with translation.override(language):
        reverse("healthz")
print(sorted(set(sys.modules) - loaded))
"""


def test_a_worker_loads_every_view_before_its_first_request_without_the_database_or_redis():
    """The first request a worker served imported the URLconf and all the views under Python's import lock
    (~400 ms of CPU; under load six requests of one worker took 1.2–1.4 s). Loading the WSGI application now does
    it: resolving and reversing the application's URLs afterwards imports nothing. It needs neither PostgreSQL nor
    Redis (both unreachable here): a worker boots while they restart."""
    unreachable = "127.0.0.1:9"  # the discard port: nothing listens there
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.test"),
        DATABASE_URL=f"postgresql://nobody@{unreachable}/nothing",
        REDIS_URL=f"redis://{unreachable}/0",
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
    assert "web process warmed up" in result.stderr + result.stdout  # logged, with its routes and CPU
