"""`make test`: start (or reuse) the embedded servers unless DATABASE_URL/REDIS_URL are set, then pytest.

Several runs may go at once (developers, CI, a benchmark): each claims a slot 1-14, which names its own
test database (`test_rewards_portal_<slot>`) and its own Redis logical database, so their data, Celery
queues and rate-limit counters never meet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards_portal import embedded  # noqa: E402
from rewards_portal.settings.base import redis_url_with_db  # noqa: E402

SLOTS = range(1, 15)  # Redis databases 1..14; 0 is dev, 15 is a plain `pytest` run


def claim_slot(redis_url: str) -> tuple[int, object]:
    import redis

    client = redis.Redis.from_url(redis_url_with_db(redis_url, 0))
    for slot in SLOTS:
        if client.set(f"rp:test-slot:{slot}", os.getpid(), nx=True, ex=3 * 3600):
            return slot, client
    raise SystemExit("all test slots are busy; wait for another test run to finish")


def main() -> int:
    # The translations, as `make` compiles them (this script is also run directly).
    subprocess.check_call([sys.executable, str(ROOT / "scripts" / "messages.py"), "compile"], cwd=ROOT)
    env = dict(os.environ)
    env.update(embedded.environment_or_exit())
    slot, client = claim_slot(env["REDIS_URL"])
    env["DJANGO_SETTINGS_MODULE"] = "rewards_portal.settings.test"
    env["TEST_REDIS_URL"] = redis_url_with_db(env["REDIS_URL"], slot)
    env["TEST_DB_NAME"] = f"test_rewards_portal_{slot}"
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], env=env, cwd=ROOT)
    finally:
        client.delete(f"rp:test-slot:{slot}")
    return code


if __name__ == "__main__":
    sys.exit(main())
