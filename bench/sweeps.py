"""What one periodic sweep costs with many idle tenant schemas: visiting every schema vs only the due ones.

Not part of `make bench` (it provisions the tenants it measures: ~0.5 s each on 2 CPUs).

    .venv/bin/python -m bench.sweeps --tenants 50,500,1000 [--keep-db] [--reuse-db]

At each level (tenants; every tenant is two schemas) it times, in-process on the bench database:
- **every schema**: the per-schema work of the fulfilment, webhook, stale-batch, rollups, reminders and
  Idempotency-Key purge sweeps run in every schema (for_each_tenant), as the sweeps did before tenants.due, and
  the metrics snapshot's full pass (every schema recomputed, as every refresh did before);
- **due schemas**: the sweep tasks as they are now (tenants.due) and the snapshot's incremental refresh, once
  nothing is due (the steady state of an idle installation), and with 10 schemas noted due (10 tenants with new
  work or changes);
- the hourly tasks that still visit every schema (recipient retention, the reward totals rebuild);
- what the metrics note costs a writing transaction (trigger off and on, `_note_cost`).
Uses its own database (`bench_sweeps`) on the embedded server (or DATABASE_URL's); --reuse-db keeps the tenants
of an earlier --keep-db run and only adds the missing ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import database_url_for, recreate_database  # noqa: E402
from rewards_portal import embedded  # noqa: E402

DATABASE = "bench_sweeps"


def _create_range(start: int, stop: int) -> None:
    """Runs in a forked process: provision tenants start..stop-1."""
    from django.db import connections

    from tenants.services import tenant_create

    connections.close_all()
    for n in range(start, stop):
        tenant_create(slug=f"w{n:05d}", name=f"Sweep {n}", currency="USD")


def _fill(start: int, stop: int, processes: int = 2) -> None:
    from django.db import connections

    connections.close_all()
    bounds = [start + (stop - start) * i // processes for i in range(processes + 1)]
    workers = [get_context("fork").Process(target=_create_range, args=bounds[i : i + 2]) for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit(f"provisioning failed (exit {worker.exitcode})")


def _timed(run: Callable[[], object], repeat: int = 1) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _old_sweeps() -> dict[str, Callable[[], object]]:
    """Each sweep's per-schema work in every schema: what the sweep tasks did before tenants.due."""
    from batches.lifecycle import batch_requeue_stale
    from fulfillment.reminders import rewards_remind
    from fulfillment.services import rewards_due
    from funds.statements import ledger_days_compact
    from orders.idempotency import idempotency_purge
    from orders.rollups import rollups_compact
    from tenants.selectors import for_each_tenant
    from webhooks.sweeper import webhook_deliveries_sweep_schema

    def every(active_only: bool, work: Callable[[], object]) -> Callable[[], object]:
        return lambda: [work() for _ in for_each_tenant(active_only=active_only)]

    from observability.snapshot import snapshot_compute

    return {
        "fulfilment": every(True, rewards_due),
        "webhooks": every(False, webhook_deliveries_sweep_schema),
        "batches": every(True, batch_requeue_stale),
        "rollups": every(False, lambda: (rollups_compact(), ledger_days_compact())),
        "reminders": every(True, rewards_remind),
        "idempotency": every(False, idempotency_purge),
        # The snapshot's full pass recomputes every schema's share, as every refresh did before.
        "metrics": lambda: snapshot_compute(full=True),
    }


def _hourly_every_schema() -> dict[str, Callable[[], object]]:
    """The beat tasks that still visit every schema (hourly), as they run."""
    from orders.tasks import recipient_retention_task, reward_totals_rebuild_task

    return {"retention": recipient_retention_task, "totals_rebuild": reward_totals_rebuild_task}


def _new_sweeps() -> dict[str, Callable[[], object]]:
    from batches.tasks import batches_sweep
    from fulfillment.tasks import fulfilment_sweep, reminders_sweep
    from observability.snapshot import snapshot_compute
    from orders.tasks import idempotency_purge_task, rollups_compact_task
    from webhooks.tasks import webhook_deliveries_sweep

    return {
        "fulfilment": fulfilment_sweep,
        "webhooks": webhook_deliveries_sweep,
        "batches": batches_sweep,
        "rollups": rollups_compact_task,
        "reminders": reminders_sweep,
        "idempotency": idempotency_purge_task,
        "metrics": lambda: snapshot_compute(full=False),
    }


def _note_cost(transactions: int = 500, rounds: int = 7) -> dict[str, float]:
    """What the metrics note adds to a writing transaction: `transactions` one-row UPDATEs of a ledger account,
    each its own transaction, with the schema's metrics trigger off and on, alternately `rounds` times (µs per
    transaction, the median round)."""
    from django.db import connection, transaction

    from tenants.models import Tenant

    tenant = Tenant.objects.filter(is_sandbox=False).order_by("pk").first()
    assert tenant is not None
    schema = tenant.schema_name
    connection.set_schema(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {schema}.funds_ledgeraccount (currency, kind, balance, updated_at) "
            "VALUES ('XTS', 'cash', 0, now()) ON CONFLICT DO NOTHING"
        )
        cursor.execute(f"SELECT id FROM {schema}.funds_ledgeraccount ORDER BY id LIMIT 1")
        account = cursor.fetchone()[0]

    def run(state: str) -> float:
        with connection.cursor() as cursor:
            action = "ENABLE" if state == "on" else "DISABLE"
            cursor.execute(f"ALTER TABLE {schema}.funds_ledgeraccount {action} TRIGGER tenant_due_metrics")
        started = time.perf_counter()
        for _ in range(transactions):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"UPDATE {schema}.funds_ledgeraccount SET balance = balance WHERE id = %s", [account])
        return (time.perf_counter() - started) / transactions * 1e6

    samples: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):  # interleaved, so the machine's load falls on both alike
        for state in ("off", "on"):
            samples[state].append(run(state))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {schema}.funds_ledgeraccount ENABLE TRIGGER tenant_due_metrics")
        cursor.execute("DELETE FROM public.tenants_tenantdueevent WHERE kind = 'metrics'")
    result = {f"note_{state}_us": round(statistics.median(values), 1) for state, values in samples.items()}
    connection.set_schema_to_public()
    return result


def _measure(tenants: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from tenants.models import Tenant, TenantDueEvent

    connection.set_schema_to_public()
    schemas = list(Tenant.objects.with_schema().values_list("schema_name", flat=True))
    level: dict = {"tenants": tenants, "schemas": len(schemas), "load": os.getloadavg()[0]}
    old, new = _old_sweeps(), _new_sweeps()
    for kind in old:
        level[f"{kind}_every_schema_s"] = round(_timed(old[kind]), 3)
        connection.set_schema_to_public()
        new[kind]()  # the events left by provisioning and the upgrade's seed: one visit each, then steady state
        level[f"{kind}_due_none_ms"] = round(_timed(new[kind], repeat=5) * 1000, 1)
        TenantDueEvent.objects.bulk_create(
            TenantDueEvent(schema_name=schema, kind=kind, due_at=timezone.now()) for schema in schemas[:10]
        )
        level[f"{kind}_due_10_ms"] = round(_timed(new[kind]) * 1000, 1)
    for kind, run in _hourly_every_schema().items():
        level[f"{kind}_every_schema_s"] = round(_timed(run), 3)
    level.update(_note_cost())
    level["load_after"] = os.getloadavg()[0]
    return level


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="50,500,1000", help="levels, comma-separated")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-db", action="store_true")
    args = parser.parse_args()
    levels = sorted(int(n) for n in args.tenants.split(","))
    os.environ.update(DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev", DEBUG="false", LOG_LEVEL="WARNING")
    stores = embedded.environment_or_exit()
    os.environ["DATABASE_URL"] = database_url_for(stores["DATABASE_URL"], DATABASE)
    if not args.reuse_db:
        recreate_database(stores["DATABASE_URL"], DATABASE)
    report = []
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from tenants.models import Tenant

        call_command("platform_migrate", verbosity=0)
        for tenants in levels:
            connection.set_schema_to_public()
            present = Tenant.objects.filter(is_sandbox=False).count()
            if present < tenants:
                started = time.monotonic()
                _fill(present, tenants)
                print(f"provisioned {tenants - present} tenants in {time.monotonic() - started:.0f} s", flush=True)
            report.append(_measure(tenants))
            print(json.dumps(report[-1]), flush=True)
        out = embedded.VAR_DIR / "bench" / "sweeps-latest.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"written to {out}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            recreate_database(stores["DATABASE_URL"], DATABASE, create=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
