"""A real PgBouncer for `make test-scale`: transaction pooling in front of this run's test database.

Started from Debian's `pgbouncer` package (`apt-get install pgbouncer`) on a free 127.0.0.1 port, as an unprivileged
user when we are root (it refuses to run as root), with trust authentication for the test role only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def binary() -> str | None:
    return shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


def version() -> str:
    done = subprocess.run([binary() or "pgbouncer", "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PgBouncer:
    """PgBouncer in `pool_mode` (transaction by default) with `pool_size` server connections to one database."""

    def __init__(self, *, host: str, port: str | int | None, user: str, dbname: str, pool_size: int = 1,
                 pool_mode: str = "transaction") -> None:  # fmt: skip
        self.port = _free_port()
        self.user = user
        self.dir = Path(tempfile.mkdtemp(prefix="rp-pgbouncer-"))
        backend = f"host={host} dbname={dbname} user={user}" + (f" port={port}" if port else "")
        (self.dir / "users.txt").write_text(f'"{user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{dbname} = {backend} pool_size={pool_size}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\nadmin_users = {user}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n"
            "server_reset_query =\nignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        self.run_as = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_user_exists

            self.run_as = "pgserver"
            ensure_user_exists(self.run_as)
            shutil.chown(self.dir, self.run_as)
            for path in self.dir.iterdir():
                shutil.chown(path, self.run_as)
        self.process = subprocess.Popen(
            [binary() or "pgbouncer", str(self.dir / "pgbouncer.ini")],
            user=self.run_as, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir,
        )  # fmt: skip
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not start: {self.log()}")

    def url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def show(self, what: str, dbname: str) -> list[tuple]:
        """`SHOW SERVERS` etc. on the admin console (simple protocol, no transaction)."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} dbname=pgbouncer user={self.user}", autocommit=True
        ) as c:
            c.prepare_threshold = None
            return [row for row in c.execute(f"SHOW {what}", prepare=False).fetchall()]

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
