"""How many tenant schemas one PostgreSQL holds: grow an installation and measure as it grows.

Not part of `make bench` (it takes as long as the tenants you ask for: 0.5–1 s of provisioning per tenant on an
idle 2-CPU machine, several seconds on a loaded one, and ~3.2 MB of disk per tenant schema, docs/scaling.md).
Every tenant is one schema, two once its sandbox twin is used (lazy twins).

    .venv/bin/python -m bench.schemas --tenants 1000 --step 250 [--keep-db] [--twins]
    .venv/bin/python -m bench.schemas --resume ...  # go on growing a database a stopped run left (--keep-db, or killed)
    .venv/bin/python -m bench.schemas --end-only    # only the end's measurements on what a stopped run left

--twins: once the tenants are made, every tenant's sandbox twin is provisioned too, in the same steps (the worst case:
every tenant used its sandbox), so the run reaches twice as many schemas as tenants.

At each step: `tenant_create` p50/p95 (10 timed creations), `pg_class` rows, relation files on disk, database
size, request latency for one tenant among many (GET /api/v1/balances, in-process, 30 requests), the memory a
fresh PostgreSQL backend holds after reading one table in up to 1,000 schemas (its relcache and catcache).
At the end: the same for one backend reading every schema,
`pg_dump` of the whole database, and `platform_migrate` re-applying one index migration (the latest of its app, or
`platform_migrate` would find every schema current: checked, and the result verified in every schema) to every
schema, one process at a time and two at a time. Uses its own database (`bench_schemas`) on the embedded
server (or DATABASE_URL's), dropped at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import median, percentile  # noqa: E402
from bench.run import database_url_for, latest_json_write, recreate_database, standalone_database_drop  # noqa: E402
from rewards_portal import embedded  # noqa: E402

DATABASE = "bench_schemas"
# The latest migration of its app (platform_migrate looks for each app's latest), and what undoes it in a schema:
# webhooks 0005 drops the LIKE-only index on an event's id, so undoing it makes it again (orders 0022, measured
# before, dropped three such indexes; it is no longer orders' latest).
INDEX_MIGRATION = ("webhooks", "0005_event_id_pattern_index_unused", "webhooks_event_id_136b0861_like")
INDEX_UNDO = [
    'CREATE INDEX IF NOT EXISTS webhooks_event_id_136b0861_like ON "{schema}".webhooks_event (id varchar_pattern_ops)',
]


# A filling process opens a new connection every this many schemas: a PostgreSQL backend keeps a cache entry for
# every relation it created (~350 a schema), and one that had created 650 schemas held 1.3 GB and took 10x as long
# per tenant. A web or worker process's connection lives DB_CONN_MAX_AGE seconds (60 by default).
RECYCLE_EVERY = 25


def _create_range(start: int, stop: int) -> None:
    """Runs in a forked process: provision tenants start..stop-1 (untimed filling)."""
    from django.db import connections

    from tenants.models import Tenant
    from tenants.services import tenant_create

    connections.close_all()
    made = 0
    for n in range(start, stop):
        if Tenant.objects.filter(slug=f"s{n:05d}").exists():  # a resumed run fills the gaps a stopped one left
            continue
        tenant_create(slug=f"s{n:05d}", name=f"Scale {n}", currency="USD")
        made += 1
        if made % RECYCLE_EVERY == 0:
            connections.close_all()


def _twin_range(start: int, stop: int) -> None:
    """Runs in a forked process: provision the sandbox twins of tenants start..stop-1."""
    from django.db import connections

    from tenants.models import Tenant
    from tenants.services import tenant_sandbox_ensure

    connections.close_all()
    for n in range(start, stop):
        tenant_sandbox_ensure(tenant=Tenant.objects.get(slug=f"s{n:05d}", is_sandbox=False))
        if (n - start + 1) % RECYCLE_EVERY == 0:
            connections.close_all()


def _fill(start: int, stop: int, processes: int = 2, target=_create_range) -> None:
    from django.db import connections

    connections.close_all()
    bounds = [start + (stop - start) * i // processes for i in range(processes + 1)]
    context = get_context("fork")
    workers = [context.Process(target=target, args=(bounds[i], bounds[i + 1])) for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise RuntimeError(f"a filling process failed ({worker.exitcode})")


def _timed_creates(first: int, count: int = 10) -> list[float]:
    from django.db import connections

    from tenants.services import tenant_create

    connections.close_all()  # as a web request's connection: not the one that made the last hundreds of schemas
    samples = []
    for n in range(first, first + count):
        started = time.perf_counter()
        tenant_create(slug=f"s{n:05d}", name=f"Scale {n}", currency="USD")
        samples.append(time.perf_counter() - started)
    return samples


def _timed_twins(first: int, count: int = 10) -> list[float]:
    from tenants.models import Tenant
    from tenants.services import tenant_sandbox_ensure

    samples = []
    for n in range(first, first + count):
        tenant = Tenant.objects.get(slug=f"s{n:05d}", is_sandbox=False)
        started = time.perf_counter()
        tenant_sandbox_ensure(tenant=tenant)
        samples.append(time.perf_counter() - started)
    return samples


def _schemas(cursor) -> int:
    """Tenant schemas that exist: a sandbox twin has one only once used (lazy twins)."""
    cursor.execute("SELECT count(*) FROM tenants_tenant WHERE schema_ready")
    return cursor.fetchone()[0]


def _catalog(cursor) -> dict:
    cursor.execute("SELECT count(*) FROM pg_class")
    pg_class = cursor.fetchone()[0]
    cursor.execute("SELECT pg_database_size(current_database()), current_setting('data_directory')")
    size, data_dir = cursor.fetchone()
    cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
    oid = cursor.fetchone()[0]
    try:
        files = len(os.listdir(Path(data_dir) / "base" / str(oid)))
    except OSError:
        files = None  # not readable from here (another user's data directory)
    cursor.execute(
        "SELECT count(*) FILTER (WHERE autovacuum_count > 0), count(*) FILTER (WHERE autoanalyze_count > 0) "
        "FROM pg_stat_all_tables"
    )
    autovacuumed, autoanalyzed = cursor.fetchone()
    return {
        "pg_class": pg_class,
        "relation_files": files,
        "db_mb": round(size / 2**20),
        "tables_autovacuumed": autovacuumed,
        "tables_autoanalyzed": autoanalyzed,
    }


def _request_latency(key: str) -> dict:
    from django.test import Client

    client = Client()
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        response = client.get("/api/v1/balances", HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
    return {"p50_ms": round(median(samples[5:]) * 1000, 1), "p95_ms": round(percentile(samples[5:], 95) * 1000, 1)}


def _backend_memory(url: str, schemas: list[str]) -> dict:
    """A fresh backend reads one row of one table in each schema; its private memory before and after."""
    import psycopg

    def private_kb(pid: int) -> int | None:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
        return sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty") if k in fields)

    with psycopg.connect(url, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        before = private_kb(pid)
        started = time.perf_counter()
        for schema in schemas:
            conn.execute(f'SELECT id, status FROM "{schema}".orders_reward LIMIT 1')
        seconds = time.perf_counter() - started
        after = private_kb(pid)
    return {
        "schemas_touched": len(schemas),
        "private_mb_before": round(before / 1024, 1) if before else None,
        "private_mb_after": round(after / 1024, 1) if after else None,
        "first_touch_ms_per_schema": round(seconds / max(1, len(schemas)) * 1000, 2),
    }


def _pg_dump(url: str) -> dict:
    from rewards_portal.embedded import postgres_bin_dir

    started = time.monotonic()
    done = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "-Fc", "-Z0", "--no-sync", "-f", "/dev/null", "--dbname", url],
        capture_output=True, text=True,
    )  # fmt: skip
    return {"seconds": round(time.monotonic() - started, 1), "ok": done.returncode == 0, "err": done.stderr[-300:]}


def _migrate_index(cursor, schemas: list[str], parallel: int) -> dict:
    """Undo INDEX_MIGRATION in every schema, then time platform_migrate applying it again; count the schemas where
    it took effect (all of them, or the figure is not a migration's)."""
    from django.core.management import call_command

    from tenants.migrating import tenant_migration_leaves

    app, name, index = INDEX_MIGRATION
    if (app, name) not in tenant_migration_leaves():
        raise SystemExit(f"bench/schemas.py: {app}.{name} is no longer its app's latest migration; pick the latest")
    for schema in schemas:
        for statement in INDEX_UNDO:
            cursor.execute(statement.format(schema=schema))
        cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name])
    started = time.monotonic()
    call_command("platform_migrate", parallel=parallel, verbosity=0)
    seconds = round(time.monotonic() - started, 1)
    from django.db import connection  # platform_migrate closed the caller's connection: a new cursor

    with connection.cursor() as after:
        after.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s AND schemaname = ANY(%s)", [index, schemas])
        left_undone = after.fetchone()[0]
    return {"parallel": parallel, "schemas": len(schemas), "seconds": seconds, "left_undone": left_undone}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--step", type=int, default=250)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--skip-migrate", action="store_true")
    parser.add_argument("--twins", action="store_true", help="then provision every tenant's sandbox twin too")
    parser.add_argument("--resume", action="store_true", help="go on growing the database a stopped run left")
    parser.add_argument(
        "--end-only", action="store_true",
        help="keep the tenants a stopped run left in the database (--keep-db, or killed): only the end's measurements",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false", LOG_LEVEL="WARNING")
    stores = embedded.environment_or_exit()
    url = database_url_for(stores["DATABASE_URL"], DATABASE)
    os.environ["DATABASE_URL"] = url
    if not (args.end_only or args.resume):
        recreate_database(stores["DATABASE_URL"], DATABASE)
    report: dict = {"levels": []}
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from tenants.models import Tenant
        from tenants.services import api_key_create

        call_command("platform_migrate", verbosity=0)
        connection.set_schema_to_public()
        fresh = not (args.end_only or args.resume)
        first = _timed_creates(0, 1)[0] if fresh else 0.0
        key = api_key_create(tenant=Tenant.objects.get(slug="s00000", is_sandbox=False))[1]
        present = 1 if fresh else Tenant.objects.filter(is_sandbox=False).count()
        twins = Tenant.objects.filter(is_sandbox=True, schema_ready=True).count()
        if args.resume:
            # A stopped fill leaves gaps (two processes, each part of the way through its range): fill them first.
            slugs = Tenant.objects.filter(is_sandbox=False).values_list("slug", flat=True)
            top = 1 + max(int(slug[1:]) for slug in slugs)
            if top > present:
                _fill(0, top)
            present = top
            if twins:
                ready = Tenant.objects.filter(is_sandbox=True, schema_ready=True).values_list("live__slug", flat=True)
                top_twin = 1 + max(int(slug[1:]) for slug in ready)
                _fill(0, top_twin, target=_twin_range)
                twins = top_twin
            print(f"resuming at {present} tenants, {twins} twins", flush=True)
        while not args.end_only and (present < args.tenants or (args.twins and twins < args.tenants)):
            making_twins = present >= args.tenants  # the tenants are all made: their twins now
            if making_twins:
                samples = _timed_twins(twins)
                twins += len(samples)
            else:
                samples = _timed_creates(present)
                present += len(samples)
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                level = {"tenants": present, "schemas": _schemas(cursor), **_catalog(cursor)}
            timed = "twin_create" if making_twins else "tenant_create"
            level[f"{timed}_p50_ms"] = round(median(samples) * 1000)
            level[f"{timed}_p95_ms"] = round(percentile(samples, 95) * 1000)
            level["request_one_tenant"] = _request_latency(key)
            connection.set_schema_to_public()
            schemas = list(Tenant.objects.with_schema().values_list("schema_name", flat=True)[:1000])
            level["backend_memory"] = _backend_memory(url, schemas)
            report["levels"].append(level)
            print(json.dumps(level), flush=True)
            made = twins if making_twins else present
            target = min(args.tenants, made + args.step) - 10  # the next level's 10 timed creations make it up
            if made >= args.tenants or target <= made:
                continue
            started = time.monotonic()
            _fill(made, target, target=_twin_range if making_twins else _create_range)
            print(f"filled {target - made} {'twins' if making_twins else 'tenants'} in "
                  f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
            if making_twins:
                twins = target
            else:
                present = target
        report["first_tenant_create_ms"] = round(first * 1000)
        connection.set_schema_to_public()
        if args.end_only:  # the state the stopped run left: its catalog, one tenant's requests, a backend's memory
            present = Tenant.objects.filter(is_sandbox=False).count()
            with connection.cursor() as cursor:
                level = {"tenants": present, "schemas": _schemas(cursor), **_catalog(cursor)}
            level["request_one_tenant"] = _request_latency(key)
            connection.set_schema_to_public()
            level["backend_memory"] = _backend_memory(
                url, list(Tenant.objects.with_schema().values_list("schema_name", flat=True)[:1000])
            )
            report["levels"].append(level)
            print(json.dumps(level), flush=True)
            connection.set_schema_to_public()
        every = list(Tenant.objects.with_schema().values_list("schema_name", flat=True))
        report["backend_memory_all"] = _backend_memory(url, every)  # one backend visiting every schema
        print(json.dumps({"backend_memory_all": report["backend_memory_all"]}), flush=True)
        report["pg_dump"] = _pg_dump(url)
        print(json.dumps({"pg_dump": report["pg_dump"]}), flush=True)
        if not args.skip_migrate:
            connection.set_schema_to_public()
            schemas = [s for s in Tenant.objects.with_schema().values_list("schema_name", flat=True)]
            report["migrate"] = []
            for parallel in (1, 2):
                with connection.cursor() as cursor:
                    report["migrate"].append(_migrate_index(cursor, schemas, parallel))
                print(json.dumps(report["migrate"][-1]), flush=True)
        latest_json_write("schemas", report)
    finally:
        standalone_database_drop(stores["DATABASE_URL"], DATABASE, keep=args.keep_db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
