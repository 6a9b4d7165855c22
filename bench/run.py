"""`make bench`: run the benchmark modules against a throwaway database and print one table.

Servers as for `make test`: the embedded PostgreSQL/Redis under ./var/ unless DATABASE_URL/REDIS_URL are set.
The run never touches dev or test data: it claims one of the test runner's slots (so concurrent runs never
meet), drops and recreates its own database on that server (`bench_rewards_portal_<slot>`), migrates it with
`platform_migrate`, uses the slot's Redis database, and drops the database at the end (`--keep-db` keeps it).

A benchmark is a module in bench/ with `run(ctx: Context) -> list[Row]`, listed in BENCHMARKS. Results go to
stdout as a markdown table and to var/bench/<UTC timestamp>.json and var/bench/latest.json.

    make bench                        # every benchmark
    make bench ARGS="provisioning"    # some of them
    make bench ARGS="--budget 1800"   # give slow levels (e.g. 100 and 500 tenants present) time to finish
    make bench ARGS="scaleout_pgbouncer"   # 2 gunicorn + 2 workers through PgBouncer vs direct (not run by default)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Context, Row, timed  # noqa: E402
from rewards_portal import embedded  # noqa: E402

BENCHMARKS = [
    "provisioning",
    "orders",
    "delivery",
    "webhooks",
    "bulk",
    "bulk_e2e",
    "scaleout",
    "points",
    "search",
    "people",
]
# Valid names that a plain `make bench` does not run (they need a server of the machine, or take minutes).
OPTIONAL_BENCHMARKS = ["layers", "scaleout_pgbouncer"]
BENCH_DATABASE = "bench_rewards_portal_{slot}"  # one per claimed slot: concurrent runs never collide
RESULTS_DIR = embedded.VAR_DIR / "bench"


def database_url_for(url: str, name: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def recreate_database(server_url: str, name: str, *, create: bool = True) -> None:
    """DROP (forcing out stale sessions) and optionally CREATE `name`, via the server's `postgres` database."""
    import psycopg

    with psycopg.connect(database_url_for(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def latest_json_write(name: str, data: object) -> Path:
    """A standalone bench script's result as var/bench/<name>-latest.json (bench/schemas.py, sweeps.py, …)."""
    out = embedded.VAR_DIR / "bench" / f"{name}-latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    print(f"written to {out}")
    return out


def standalone_database_drop(server_url: str, name: str, *, keep: bool) -> None:
    """A standalone bench script's end: this process's connections closed, its database dropped unless kept
    (--keep-db, for a later --reuse-db run)."""
    from django.db import connections

    connections.close_all()
    if not keep:
        recreate_database(server_url, name, create=False)


def render_table(rows: list[Row]) -> str:
    lines = ["| benchmark | value | unit | ceiling / comparison | notes |", "|---|---:|---|---|---|"]
    for row in rows:
        value = "skipped" if row.value is None else f"{row.value:g}"
        lines.append(f"| {row.benchmark} | {value} | {row.unit} | {row.comparison} | {row.notes} |")
    return "\n".join(lines)


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "benchmarks", nargs="*", default=BENCHMARKS,
        help=f"any of: {', '.join(BENCHMARKS)}; not run unless named: {', '.join(OPTIONAL_BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--keep-db", action="store_true", help="leave the bench database behind for inspection")
    parser.add_argument(
        "--budget", type=float, default=float(os.environ.get("BENCH_BUDGET_SECONDS", 480)),
        help="seconds the whole run should stay under; optional levels are skipped beyond it (default 480)",
    )  # fmt: skip
    args = parser.parse_args()
    known = BENCHMARKS + OPTIONAL_BENCHMARKS
    unknown = [name for name in args.benchmarks if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(known)}")

    started = time.monotonic()
    # Before anything imports the settings (base.py reads these at import time).
    os.environ.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev",
        DEBUG="false",  # DEBUG keeps every query in memory and slows the ORM down
        LOG_LEVEL="WARNING",
    )
    from rewards_portal.settings.base import redis_url_with_db
    from scripts.run_tests import claim_slot

    stores = embedded.environment_or_exit()
    server = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded (./var/pg)"
    slot, slot_client = claim_slot(stores["REDIS_URL"])
    database = BENCH_DATABASE.format(slot=slot)
    database_url = database_url_for(stores["DATABASE_URL"], database)
    redis_url = redis_url_with_db(stores["REDIS_URL"], slot)
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url)
    rows: list[Row] = []
    failed: list[str] = []
    try:
        recreate_database(stores["DATABASE_URL"], database)
        import django

        django.setup()
        import redis
        from django.core.management import call_command
        from django.db import connection, connections

        redis.Redis.from_url(redis_url).flushdb()
        migrate_s = timed(lambda: call_command("platform_migrate", verbosity=0))
        rows.append(Row("setup: platform_migrate (empty database)", round(migrate_s, 2), "s", "", "public + template"))
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            pg_version = cursor.fetchone()[0]
        ctx = Context(database_url=database_url, redis_url=redis_url, budget_seconds=args.budget)
        ctx.started_at = started
        for name in args.benchmarks:
            print(f"running {name}…", file=sys.stderr, flush=True)
            try:
                module_rows = importlib.import_module(f"bench.{name}").run(ctx)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                module_rows = [Row(name, None, "", "", "FAILED (traceback above)")]
            rows.extend(module_rows)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        slot_client.delete(f"rp:test-slot:{slot}")
        if not args.keep_db:
            try:
                recreate_database(stores["DATABASE_URL"], database, create=False)
            except Exception as exc:
                print(f"could not drop {database}: {exc}", file=sys.stderr)

    total_s = time.monotonic() - started
    now = datetime.now(UTC)
    report = {
        "started_at": now.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "postgres": pg_version,
        "server": server,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
        "total_seconds": round(total_s, 1),
        "rows": [row.as_dict() for row in rows],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(report, indent=2, ensure_ascii=False)
    path = RESULTS_DIR / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(payload)
    (RESULTS_DIR / "latest.json").write_text(payload)
    print()
    print(render_table(rows))
    print()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(
        f"PostgreSQL {pg_version} ({server}), Python {report['python']}, {report['machine']}, commit "
        f"{report['commit']}; {total_s:.0f} s in all. JSON: {shown}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
