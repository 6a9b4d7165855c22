"""`make dev`: embedded (or configured) servers, migrations, demo data, then web + worker + beat.

Ctrl-C stops the three processes; the embedded PostgreSQL and Redis keep running (so a second shell's
`manage.py` keeps working) until `make stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rewards_portal import embedded  # noqa: E402


def shared_metrics(env: dict[str, str], directory: Path) -> None:
    """/metrics (loopback in dev) adds up web, worker and beat: each process writes its counters to one directory,
    emptied at each start (prometheus_client's multiprocess mode), unless PROMETHEUS_MULTIPROC_DIR is given."""
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.dev")
    env.update(embedded.environment_or_exit())  # DATABASE_URL / REDIS_URL: given, or the embedded servers
    env["PYTHONUNBUFFERED"] = "1"
    # Claim links, emails and demo logos name the address this server listens on (PORT=8100 make dev too).
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    (ROOT / "var").mkdir(exist_ok=True)
    py = sys.executable
    manage = [py, str(ROOT / "manage.py")]
    subprocess.run([*manage, "platform_migrate", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*manage, "dev_bootstrap", "--port", port], env=env, check=True, cwd=ROOT)
    shared_metrics(env, ROOT / "var" / "run" / "metrics")
    celery = [py, "-m", "celery", "-A", "rewards_portal"]
    processes = {
        "web": subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env, cwd=ROOT),
        "worker": subprocess.Popen(
            [*celery, "worker", "-Q", "default,delivery,webhooks,bulk", "-c", "2", "-l", "warning", "-n", "dev@%h"],
            env=env,
            cwd=ROOT,
        ),
        # Leads through a PostgreSQL lock (core.beat): a second `make dev` on the same database stays a standby.
        "beat": subprocess.Popen([*celery, "beat", "-l", "warning"], env=env, cwd=ROOT),
    }

    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes.values():
            if process.poll() is None:
                process.terminate()

    # Ctrl-C reaches the children too (same process group); SIGTERM (e.g. `kill`) only reaches us. Either
    # way: stop all three and wait for them, so a second `make dev` never meets a half-dead worker.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None and not stopping:
                print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                code = process.returncode or 1
                stop()
        time.sleep(0.2)
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
