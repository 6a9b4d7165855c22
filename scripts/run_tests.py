"""`make test`: start (or reuse) the embedded servers unless DATABASE_URL/REDIS_URL are set, then pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards_portal import embedded  # noqa: E402


def main() -> int:
    env = dict(os.environ)
    env.update(embedded.environment())
    env["DJANGO_SETTINGS_MODULE"] = "rewards_portal.settings.test"
    args = sys.argv[1:] or []
    return subprocess.call([sys.executable, "-m", "pytest", *args], env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
