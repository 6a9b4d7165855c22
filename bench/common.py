"""What every benchmark module shares: the result row, timing statistics and the run's context."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One line of the results table (and one object in the JSON file)."""

    benchmark: str
    value: float | None  # None: skipped
    unit: str
    comparison: str = ""  # a ceiling, a baseline or a ratio that gives the value its meaning
    notes: str = ""
    extra: dict = field(default_factory=dict)  # raw samples and parameters, kept in the JSON only

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """Handed to each module's `run(ctx)`: the bench database and a time budget shared by the whole run."""

    database_url: str
    redis_url: str
    budget_seconds: float
    started_at: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def remaining(self) -> float:
        return self.budget_seconds - self.elapsed()


def base_person_rewards(product: Any, count: int, *, phone: bool = False, message: bool = False) -> list[dict]:
    """An order's rewards for the benches that clone one base order (search, retention): `count` emails of 25.00
    to "Base Person i" (base{i}@example.com), Sales and Ops by turns; with a phone and a message when asked."""
    return [
        {
            "product_id": str(product.id),
            "amount": "25.00",
            "currency": "USD",
            "delivery_method": "email",
            "recipient": {
                "name": f"Base Person {i}",
                "email": f"base{i}@example.com",
                **({"phone": f"+6012555000{i}"} if phone else {}),
            },
            **({"message": f"Happy anniversary, Base Person {i}!"} if message else {}),
            "metadata": {"department": "Sales" if i % 2 else "Ops"},
        }
        for i in range(count)
    ]


def timed(func: Callable[[], object]) -> float:
    """Seconds one call takes (monotonic clock)."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def peak_memory(pids: list[int]) -> dict | None:
    """Peak resident memory (Linux VmHWM: the high-water mark over each process's life) of `pids` and their
    children, in MiB: the largest single process and the sum. None where /proc is not available."""
    import psutil

    peaks: dict[int, float] = {}
    for pid in pids:
        try:
            tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
        for process in tree:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peaks[process.pid] = int(line.split()[1]) / 1024  # kB → MiB
            except OSError:
                continue
    if not peaks:
        return None
    values = peaks.values()
    return {"max_mib": round(max(values), 1), "total_mib": round(sum(values), 1), "processes": len(peaks)}


def memory_row(name: str, peaks: dict | None, what: str) -> Row:
    """A results row for `peak_memory()`'s reading of one kind of process."""
    if peaks is None:
        return Row(f"peak memory: {name}", None, "MiB", "", "no /proc on this system")
    return Row(
        f"peak memory: {name}",
        peaks["max_mib"],
        "MiB RSS",
        f"{peaks['total_mib']:g} MiB over {peaks['processes']} process(es)",
        f"VmHWM (high-water mark) per process at the end of {what}",
        peaks,
    )


def backends_cpu_seconds() -> dict[int, float] | None:
    """CPU seconds (/proc/<pid>/schedstat: time on a CPU, in nanoseconds) of every client backend connected to the
    bench database so far, by pid; None when the server is not on this host. The difference of two readings is
    PostgreSQL's CPU for the work between them, as long as the connections live on (workers keep theirs)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
        )
        pids = [row[0] for row in cursor.fetchall()]
    seconds = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as stat:
                seconds[pid] = int(stat.read().split()[0]) / 1e9
        except FileNotFoundError:
            continue  # ended since
        except OSError:
            return None
    return seconds or None


def backends_cpu_spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds the backends used between two `backends_cpu_seconds()` readings (a new backend: all of its)."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# --- Real Celery workers (delivery and webhooks benchmarks) ------------------------------------------------

BENCH_SECRET_KEY = "bench-" + "x" * 50


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Workers:
    """`count` real `celery worker` processes on the bench database and the slot's Redis, production settings.

    Pool: threads. On a 2-core machine two processes already cover both cores, and a task is mostly waiting
    (PostgreSQL round trips, SMTP, HTTP): a few threads per process keep the cores busy while one waits,
    without prefork's extra processes (each a full Django + its own DB connections) fighting for 2 cores.
    More threads than that only queue on the GIL and on PostgreSQL.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        name: str,
        count: int = 2,
        concurrency: int = 4,
        env: dict | None = None,
        queues: list[str] | None = None,
    ) -> None:
        import os
        from pathlib import Path

        self.ctx = ctx
        self.count = count
        self.concurrency = concurrency
        self.extra_env = env or {}
        self.processes: list = []
        root = Path(__file__).resolve().parent.parent
        self.root = root
        self.log_path = root / "var" / "bench" / f"workers-{name}-{os.getpid()}.log"
        self.names = [f"bench{os.getpid()}w{n}" for n in range(count)]
        # The queues each process consumes (comma-separated), one entry per process; default: every queue.
        self.queues = queues or ["default,delivery,webhooks,bulk"] * count

    def env(self) -> dict:
        import os

        from django.conf import settings

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="rewards_portal.settings.production",
            DATABASE_URL=self.ctx.database_url,
            REDIS_URL=self.ctx.redis_url,
            SECRET_KEY=BENCH_SECRET_KEY,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            # The bench process's keys: what it encrypts (webhook secrets, claim tokens) the workers must read.
            ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),
            DEBUG="false",
            LOG_LEVEL="WARNING",
            DB_CONN_MAX_AGE="600",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> None:
        import subprocess
        import sys

        from core.health import WORKER_HEARTBEAT_KEY
        from core.redis import get_redis
        from rewards_portal.celery import app

        # Start clean: tasks an earlier module left behind (say, one that failed) must not run in this one.
        app.control.purge()
        get_redis().hdel(WORKER_HEARTBEAT_KEY, *[f"{name}@bench" for name in self.names])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        env = self.env()
        for name, queues in zip(self.names, self.queues, strict=True):
            command = [sys.executable, "-m", "celery", "-A", "rewards_portal", "worker", "-P", "threads"]
            command += ["-Q", queues, "-c", str(self.concurrency), "-l", "warning"]
            command += ["-n", f"{name}@bench", "--without-mingle", "--without-gossip", "--without-heartbeat"]
            self.processes.append(
                subprocess.Popen(command, env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = {field.decode() for field in get_redis().hkeys(WORKER_HEARTBEAT_KEY)}
            if all(f"{name}@bench" in ready for name in self.names):
                return
            if any(process.poll() is not None for process in self.processes):
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"celery workers did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM: finish the running tasks), SIGKILL after `timeout`."""
        import subprocess

        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the worker processes have used so far (Linux /proc; None elsewhere)."""
        import os

        total = 0.0
        try:
            for process in self.processes:
                with open(f"/proc/{process.pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (OSError, ValueError, IndexError):
            return None
        return total

    def peak_memory(self) -> dict | None:
        """`peak_memory()` of the worker processes (threads pool: one process each); read before stop()."""
        return peak_memory([process.pid for process in self.processes])

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""
