"""Real `celery worker` processes for tests, on the test database, the test Redis and the test SMTP sink."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def worker_database_url() -> str:
    """DATABASE_URL for a subprocess (worker, beat, script) that must use this run's test database."""
    db = settings.DATABASES["default"]
    host = quote(db["HOST"], safe="") if db["HOST"].startswith("/") else db["HOST"]
    port = f":{db['PORT']}" if db.get("PORT") else ""
    auth = db["USER"] + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess (a worker, beat) that runs on this run's test database and test Redis."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.test",
        DATABASE_URL=worker_database_url(),
        TEST_REDIS_URL=settings.REDIS_URL,
        TEST_DB_NAME=settings.DATABASES["default"]["NAME"],
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)  # may replace any of the above (e.g. DATABASE_URL through a pooler)
    return env


class WorkerPool:
    """Real `celery worker` subprocesses on the test database, test Redis and the test SMTP server."""

    def __init__(self, smtp_port: int) -> None:
        self.smtp_port = smtp_port
        self.processes: list[subprocess.Popen] = []
        self.started = 0
        self.log_path = ROOT / "var" / f"test-worker-{os.getpid()}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = open(self.log_path, "a")  # open for the pool's life: close() closes it

    def start(
        self, count: int = 1, concurrency: int = 4, queues: str = "default,delivery,webhooks,bulk", **env_extra: str
    ) -> None:
        from core.health import WORKER_HEARTBEAT_KEY
        from core.redis import get_redis

        env = subprocess_env(TEST_SMTP_PORT=str(self.smtp_port), **env_extra)
        names = []
        for _ in range(count):
            self.started += 1
            name = f"test{os.getpid()}n{self.started}"
            names.append(name)
            command = [sys.executable, "-m", "celery", "-A", "rewards_portal", "worker", "-P", "threads"]
            command += ["-Q", queues, "-c", str(concurrency), "-l", "info"]
            command += ["-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
            self.processes.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
            )
        deadline = time.time() + 30
        while time.time() < deadline:
            ready = {field.decode().split("@")[0] for field in get_redis().hkeys(WORKER_HEARTBEAT_KEY)}
            if all(name in ready for name in names):
                return
            if any(p.poll() is not None for p in self.processes[-count:]):
                raise RuntimeError(f"celery worker exited: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"celery worker did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9 every worker (no chance to ack, requeue or clean up)."""
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = []

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []

    def close(self) -> None:
        """stop(), and close the log."""
        self.stop()
        self._log.close()

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text()
