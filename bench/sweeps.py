"""What each periodic task costs per tick with many idle tenant schemas: the table an operator needs.

Not part of `make bench` (it provisions the tenants it measures: ~0.5 s each on 2 CPUs).

    .venv/bin/python -m bench.sweeps --tenants 100,2000 [--keep-db] [--reuse-db] [--compare]

At each level (tenants; one schema each, sandbox twins being made on first use) it runs, in-process on the bench
database:
- **every beat entry** (settings.CELERY_BEAT_SCHEDULE) as beat sends it, once nothing is due (the steady state of
  an idle installation; a first tick takes what provisioning and the upgrade noted): the median time of 5 ticks,
  and what one tick sends and enters — SQL statements and tenant schemas, counted by an execute wrapper (both
  independent of the machine's load);
- the entries that visit schemas with work (tenants.due): the next period's tick (the schemas already due within
  one period brought forward: the totals rebuild's safety-net share of the hour), and a tick with 10 schemas noted
  due for their kind (10 tenants with new work or changes): each one tick's time and the schemas it entered;
- with --compare, what the tasks did before tenants.due: each sweep's per-schema work run in every schema
  (for_each_tenant), the metrics snapshot's full pass, recipient retention and the reward totals rebuild in every
  schema; and what the metrics note costs a writing transaction (trigger off and on, `_note_cost`).
Uses its own database (`bench_sweeps`) on the embedded server (or DATABASE_URL's); --reuse-db keeps the tenants
of an earlier --keep-db run and only adds the missing ones (platform_migrate brings them to today's migrations).
Prints a markdown table per level and writes JSON to var/bench/sweeps-latest.json.
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

from bench.run import database_url_for, latest_json_write, recreate_database, standalone_database_drop  # noqa: E402
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
    """Each periodic task's per-schema work in every schema: what the tasks did before tenants.due."""
    from batches.lifecycle import batch_requeue_stale
    from fulfillment.reminders import rewards_remind
    from fulfillment.services import rewards_due
    from funds.statements import ledger_days_compact
    from observability.snapshot import snapshot_compute
    from orders.erasure import rewards_anonymise_delivered
    from orders.idempotency import idempotency_purge
    from orders.rollups import reward_totals_rebuild, rollups_compact
    from tenants.selectors import for_each_tenant
    from webhooks.sweeper import webhook_deliveries_sweep_schema

    def every(active_only: bool, work: Callable[[], object]) -> Callable[[], object]:
        return lambda: [work() for _ in for_each_tenant(active_only=active_only)]

    return {
        "fulfilment": every(True, rewards_due),
        "webhooks": every(False, webhook_deliveries_sweep_schema),
        "batches": every(True, batch_requeue_stale),
        "rollups": every(False, lambda: (rollups_compact(), ledger_days_compact())),
        "reminders": every(True, rewards_remind),
        "idempotency": every(False, idempotency_purge),
        "retention": every(False, rewards_anonymise_delivered),
        "totals": every(False, reward_totals_rebuild),
        # The snapshot's full pass recomputes every schema's share, as every refresh did before.
        "metrics": lambda: snapshot_compute(full=True),
    }


def _beat_entries() -> list[tuple[str, str, float, Callable[[], object]]]:
    """(entry, task name, period in seconds, the task) for every beat entry, in the schedule's order."""
    from importlib import import_module

    from django.conf import settings

    entries = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        module, _, attr = entry["task"].rpartition(".")
        task = getattr(import_module(module), attr)
        entries.append((name, entry["task"], float(entry["schedule"]), task))
    return entries


# The due kind (tenants.due) each task sweeps by, for the "10 schemas due" column (names looked up, so the
# bench also runs on code that has fewer kinds).
_TASK_KINDS = {
    "fulfillment.tasks.fulfilment_sweep": "FULFILMENT",
    "fulfillment.tasks.reminders_sweep": "REMINDERS",
    "webhooks.tasks.webhook_deliveries_sweep": "WEBHOOKS",
    "batches.tasks.batches_sweep": "BATCHES",
    "batches.tasks.batch_approvals_expire_task": "BATCH_APPROVALS",
    "automations.tasks.automations_schedule": "AUTOMATIONS",
    "orders.tasks.idempotency_purge_task": "IDEMPOTENCY",
    "orders.tasks.rewards_expire_task": "EXPIRY",
    "orders.tasks.order_approvals_expire_task": "ORDER_APPROVALS",
    "orders.tasks.rollups_compact_task": "ROLLUPS",
    "orders.tasks.reward_totals_rebuild_task": "TOTALS",
    "orders.tasks.recipient_retention_task": "RETENTION",
    "points.tasks.points_expiry_sweep": "POINTS",
    "observability.tasks.metrics_snapshot_refresh": "METRICS",
}


def _tick(run: Callable[[], object]) -> tuple[float, int, int]:
    """Run one tick from the public schema: (seconds, SQL statements sent, tenant schemas entered)."""
    from django.db import connection

    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(context["connection"].schema_name)
        return execute(sql, params, many, context)

    connection.set_schema_to_public()
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    connection.set_schema_to_public()
    return seconds, len(statements), len(set(statements) - {"public"})


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


def _measure(tenants: int, *, compare: bool) -> dict:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    import tenants.due as due
    from tenants.models import Tenant, TenantDueEvent

    connection.set_schema_to_public()
    schemas = list(Tenant.objects.with_schema().values_list("schema_name", flat=True))
    level: dict = {"tenants": tenants, "schemas": len(schemas), "load": os.getloadavg()[0], "ticks": []}
    for name, task_name, period, task in _beat_entries():
        _tick(task)  # what provisioning and the upgrade noted: one visit each, then the steady state
        samples = [_tick(task) for _ in range(5)]
        row = {
            "entry": name,
            "task": task_name,
            "period_s": period,
            "idle_ms": round(statistics.median(seconds for seconds, _, _ in samples) * 1000, 1),
            "idle_statements": samples[-1][1],
            "idle_schemas": samples[-1][2],
        }
        kind = getattr(due, _TASK_KINDS.get(task_name, ""), None)
        if kind is not None:
            # The next period's tick: the schemas already due within one period (a safety net's share, such as
            # the totals rebuild's slots), brought forward to now.
            upcoming = TenantDueEvent.objects.filter(kind=kind, due_at__lte=timezone.now() + timedelta(seconds=period))
            if upcoming.update(due_at=timezone.now()):
                seconds, _, entered = _tick(task)
                row.update(next_period_ms=round(seconds * 1000, 1), next_period_schemas=entered)
            if kind == due.METRICS:  # its safety net: every share aged, as after an idle hour; one refresh's quota
                row.update(_metrics_aged(task))
            TenantDueEvent.objects.bulk_create(
                TenantDueEvent(schema_name=schema, kind=kind, due_at=timezone.now()) for schema in schemas[:10]
            )
            seconds, _, entered = _tick(task)
            row.update(due_10_ms=round(seconds * 1000, 1), due_10_schemas=entered)
        level["ticks"].append(row)
        print(json.dumps(row), flush=True)
    if compare:
        for kind, run in _old_sweeps().items():
            level[f"{kind}_every_schema_s"] = round(_timed(run), 3)
        level.update(_note_cost())
    level["load_after"] = os.getloadavg()[0]
    return level


def _metrics_aged(task: Callable[[], object]) -> dict:
    """A metrics refresh once every share is older than METRICS_RECOMPUTE_SECONDS (the safety net's quota of
    schemas recomputed); the shares' times are put back afterwards, so later idle ticks stay idle."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from observability.models import SchemaGauges

    aged = timezone.now() - timedelta(seconds=settings.METRICS_RECOMPUTE_SECONDS + 1)
    SchemaGauges.objects.update(computed_at=aged)
    seconds, _, entered = _tick(task)
    SchemaGauges.objects.update(computed_at=timezone.now())
    return {"next_period_ms": round(seconds * 1000, 1), "next_period_schemas": entered}


def _table(level: dict) -> str:
    lines = [
        f"{level['schemas']:,} tenant schemas, load average {level['load']:.1f} → {level['load_after']:.1f}",
        "",
        "| beat entry | period | tick, nothing due | statements | schemas entered | next period's tick | "
        "10 schemas due |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in level["ticks"]:
        due_10 = f"{row['due_10_ms']:,} ms ({row['due_10_schemas']})" if "due_10_ms" in row else "—"
        upcoming = f"{row['next_period_ms']:,} ms ({row['next_period_schemas']})" if "next_period_ms" in row else "—"
        lines.append(
            f"| {row['entry']} | {row['period_s']:g} s | {row['idle_ms']:,} ms | {row['idle_statements']:,} "
            f"| {row['idle_schemas']:,} | {upcoming} | {due_10} |"
        )
    before = {key: value for key, value in level.items() if key.endswith("_every_schema_s")}
    if before:
        lines += ["", "Every schema's work (before tenants.due): " + ", ".join(
            f"{key.removesuffix('_every_schema_s')} {value:g} s" for key, value in before.items()
        )]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="50,500,1000", help="levels, comma-separated")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse-db", action="store_true")
    parser.add_argument("--compare", action="store_true", help="also time every schema's work, as before tenants.due")
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
        import logging

        logging.getLogger("observability.snapshot").setLevel(logging.WARNING)  # one line per refresh otherwise
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
            report.append(_measure(tenants, compare=args.compare))
            print(_table(report[-1]), flush=True)
        latest_json_write("sweeps", report)
    finally:
        standalone_database_drop(stores["DATABASE_URL"], DATABASE, keep=args.keep_db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
