"""People import rows per second (a 100,000-row CSV upserted through the bulk machinery) and one automation run
over those 100,000 people: the time to find the day's birthdays across time zones and to place their rewards.

Import: `batch_upload(kind=people, dry_run=True)` (every row validated, valid rows COPY-loaded), then confirm and
`batch_process` (two set-based statements per chunk: an UPDATE of known people, an INSERT of new ones). The
same file a second time measures the update path. Automation: a birthday automation; BENCH_PEOPLE_DUE (default
1,000) of the people share the bench day's birthday, in three time zones, the others are spread over the year.
`automations_tick` at 14:00 UTC (09:00 has passed that day in every zone of ZONES) computes who is due and sends
each their reward through the ordinary order path (funds held), one transaction per person.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from .common import Context, Row

ROWS = int(os.environ.get("BENCH_PEOPLE_ROWS", "100000"))
DUE = int(os.environ.get("BENCH_PEOPLE_DUE", "1000"))
DAY = date(2026, 12, 7)
ZONES = ("", "Asia/Kuala_Lumpur", "Europe/Berlin")  # the tenant's (UTC), UTC+8, UTC+1
TICK_AT = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def _file(rows: int) -> bytes:
    from testsupport.batches import csv_bytes

    columns = ["external_id", "name", "email", "timezone", "birthday", "hire_date", "department"]
    start = date(2001, 1, 1)

    def birthday(i: int) -> str:
        if i < DUE:
            return DAY.strftime("%m-%d")
        day = start + timedelta(days=i % 365)
        return day.strftime("%m-%d") if day.strftime("%m-%d") != DAY.strftime("%m-%d") else "01-01"

    return csv_bytes(
        (
            {"external_id": f"emp-{i}", "name": f"Bench Person {i}", "email": f"p{i}@people.bench.example",
             "timezone": ZONES[i % 3], "birthday": birthday(i), "hire_date": "2020-03-01",
             "department": ("Sales", "Ops", "Engineering")[i % 3]}
            for i in range(rows)
        ),
        columns=columns,
    )  # fmt: skip


def _import(data: bytes) -> tuple[float, float]:
    """(seconds to validate, seconds to apply) one people import of `data`, in the current schema."""
    from batches.lifecycle import batch_confirm
    from batches.models import BatchKind
    from batches.processing import batch_process
    from batches.upload import batch_upload

    started = time.perf_counter()
    batch = batch_upload(kind=BatchKind.PEOPLE, file=io.BytesIO(data), file_name="people.csv", size=len(data))
    validate_s = time.perf_counter() - started
    assert batch.valid_rows == ROWS, (batch.valid_rows, batch.error_rows)
    started = time.perf_counter()
    batch_confirm(batch_id=batch.id)
    while batch_process(batch_id=batch.id, max_seconds=600) == "more":
        pass
    return validate_s, time.perf_counter() - started


def run(ctx: Context) -> list[Row]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from audit.actors import Actor
    from automations.models import AutomationRun
    from automations.running import automations_tick
    from automations.schedule import due_now
    from automations.services import automation_create
    from funds.selectors import ledger_invariant_violations
    from funds.services import funds_deposit
    from people.models import Person
    from tenants.services import tenant_create
    from testsupport.catalog import make_shop

    tenant = tenant_create(slug=f"bench-people-{uuid.uuid4().hex[:6]}", name="Bench People")
    shop = make_shop()
    data = _file(ROWS)
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100000000")
        create_validate, create_apply = _import(data)
        assert Person.objects.count() == ROWS
        update_validate, update_apply = _import(data)
        reward = {"product_id": str(shop.coffee_usd.id), "amount": "10.00", "message": "Happy birthday!"}
        automation = automation_create(
            actor=Actor.cli(), data={"name": "Birthday", "trigger": {"type": "birthday"}, "reward": reward}
        )
        started = time.perf_counter()
        due = list(due_now(automation, TICK_AT))
        compute_s = time.perf_counter() - started
        assert len(due) == DUE, len(due)
        started = time.perf_counter()
        counts = automations_tick(now=TICK_AT, max_seconds=3600)
        tick_s = time.perf_counter() - started
        assert counts["sent"] == DUE and AutomationRun.objects.count() == DUE, counts
        violations = ledger_invariant_violations()
        assert violations == [], violations
    connection.set_schema_to_public()
    size = f"{ROWS} rows, {len(data) / 1e6:.1f} MB"
    return [
        Row("people import, new people (validate + apply)", round(ROWS / (create_validate + create_apply)), "rows/s",
            "target >= 10000 rows/s (the bulk send path's combined rate)",
            f"{size}; validate {create_validate:.1f} s, apply {create_apply:.1f} s"),
        Row("people import, every row an update", round(ROWS / (update_validate + update_apply)), "rows/s",
            "target >= 10000 rows/s", f"validate {update_validate:.1f} s, apply {update_apply:.1f} s"),
        Row(f"automation run over {ROWS} people: who is due", round(compute_s, 2), "s",
            "ceiling 5 s (one query per time zone)", f"{DUE} due in {len(ZONES)} zones"),
        Row(f"automation run over {ROWS} people: compute and place {DUE} rewards", round(tick_s, 1), "s",
            "ceiling 50 s (one tick's budget; more carries over to the next minute's tick)",
            f"{DUE / tick_s:.0f} rewards/s, one transaction each (run claim + order + hold)"),
    ]  # fmt: skip
