"""Bulk batches with real Celery workers on the bulk queue: every row becomes a reward exactly once, even when
the worker pool is killed (kill -9) mid-batch and restarted."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django_tenants.utils import tenant_context

from batches.lifecycle import batch_requeue_stale
from batches.models import Batch, BatchHold, BatchRow
from batches.processing import CHUNK
from batches.tasks import batch_process_task
from batches.upload import batch_upload
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Reward
from testsupport.batches import csv_bytes, digital_rows
from testsupport.catalog import make_shop
from testsupport.waiting import wait_for
from webhooks.models import Event

pytestmark = pytest.mark.worker
LATER = "2099-01-01T09:00:00Z"  # scheduled: the rewards wait for their date, so no delivery runs in these tests


def _send(tenant, rows: list[dict]) -> str:
    with tenant_context(tenant):
        batch = batch_upload(file=io.BytesIO(csv_bytes(rows)), file_name="t.csv", dry_run=False)
        assert batch.status == "confirmed"
        return str(batch.id)


def _batch(tenant, batch_id: str) -> Batch:
    with tenant_context(tenant):
        return Batch.objects.get(pk=batch_id)


def _assert_sent_exactly_once(tenant, batch_id: str, rows: int, *, deposit: Decimal, cost: Decimal) -> None:
    with tenant_context(tenant):
        batch = Batch.objects.get(pk=batch_id)
        assert (batch.status, batch.rows_done, batch.rows_failed) == ("completed", rows, 0)
        linked = BatchRow.objects.filter(batch_id=batch_id, reward__isnull=False)
        assert linked.count() == rows == Reward.objects.count()  # no reward without its row, none twice
        assert linked.values("reward_id").distinct().count() == rows
        assert not BatchRow.objects.filter(batch_id=batch_id).exclude(status="created").exists()
        held = Reward.objects.filter(hold__status="pending").aggregate(total=Sum("hold__amount"))["total"]
        assert held == cost
        assert BatchHold.objects.get(batch_id=batch_id).hold.status == "released"
        balance = balance_get(currency="USD")
        assert (balance.held, balance.available) == (cost, deposit - cost)
        assert ledger_invariant_violations() == []
        assert Event.objects.filter(type="batch.completed", data__id=batch_id).count() == 1


def test_confirmed_batch_becomes_rewards_through_the_bulk_worker(committed_tenant, celery_worker_process):
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="10000.00")
    batch_id = _send(committed_tenant, digital_rows(shop.coffee_usd, 300, amount="25", deliver_at=LATER))
    wait_for(lambda: _batch(committed_tenant, batch_id).status == "completed", timeout=60)
    _assert_sent_exactly_once(committed_tenant, batch_id, 300, deposit=Decimal("10000.00"), cost=Decimal("7500.00"))


def test_worker_killed_mid_batch_sends_every_row_exactly_once(committed_tenant, celery_worker_process):
    rows = 12 * CHUNK
    deposit = Decimal(20 * rows)  # twice what the rows cost
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount=str(deposit))
    batch_id = _send(committed_tenant, digital_rows(shop.coffee_usd, rows, amount="10", deliver_at=LATER))

    wait_for(lambda: _batch(committed_tenant, batch_id).rows_done >= CHUNK, timeout=60, interval=0.02)
    celery_worker_process.kill()  # kill -9: the chunk in flight rolls back, its task stays unacked
    done_at_kill = _batch(committed_tenant, batch_id).rows_done
    assert done_at_kill < rows, "the batch finished before the kill; make it bigger"
    with tenant_context(committed_tenant):  # only whole chunks ever commit: no row done without its reward
        # One statement, one snapshot: a chunk whose COMMIT the killed worker had sent may still land between two
        # separate counts (its backend commits once it has the COMMIT, whatever became of the client).
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT (SELECT count(*) FROM {BatchRow._meta.db_table} WHERE batch_id = %s AND status = 'created'), "
                f"(SELECT count(*) FROM {BatchRow._meta.db_table} WHERE batch_id = %s AND reward_id IS NOT NULL), "
                f"(SELECT count(*) FROM {Reward._meta.db_table})",
                [batch_id, batch_id],
            )
            marked, linked, rewards = cursor.fetchone()
        assert marked == linked == rewards, (marked, linked, rewards)
    celery_worker_process.start(2)

    def completed() -> bool:
        with tenant_context(committed_tenant):
            # what the beat sweeper does (BATCH_STALE_SECONDS, shortened here): re-queue a quiet batch
            for stale_id in batch_requeue_stale(stale_after=timedelta(seconds=2)):
                batch_process_task.delay(stale_id)
        return _batch(committed_tenant, batch_id).status == "completed"

    try:
        wait_for(completed, timeout=120, interval=0.5)
    except BaseException:
        with tenant_context(committed_tenant):
            states = list(BatchRow.objects.values("status").annotate(n=Count("id")))
        raise AssertionError(f"batch not completed after the restart: {states}") from None
    _assert_sent_exactly_once(committed_tenant, batch_id, rows, deposit=deposit, cost=Decimal(10 * rows))
