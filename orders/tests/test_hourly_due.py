"""The hourly recipient retention and reward totals rebuild visit only the schemas with work (tenants.due): a schema
with nothing due is not entered, a delivery or a retention setting changed is picked up when its reward falls due,
the totals are rebuilt where the hourly rollup changed and at each schema's safety-net slot, and a run that dies
in a schema leaves it due for the next."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from core.db import connection
from fulfillment.services import reward_fulfil
from funds.selectors import ledger_invariant_violations
from orders import erasure, rollups
from orders.models import Reward, RewardStat, RewardStatTotal
from orders.tasks import recipient_retention_task, reward_totals_rebuild_task, rollups_compact_task
from people.erasure import ERASED
from tenants.due import RETENTION, TOTALS
from tenants.models import TenantDueEvent
from tenants.services import tenant_create
from testsupport.orders import digital_order


@pytest.fixture
def entered(monkeypatch) -> list[str]:
    """The schemas whose retention or totals work ran (the tasks import these from their modules when they run)."""
    schemas: list[str] = []
    anonymise, rebuild = erasure.rewards_anonymise_delivered, rollups.reward_totals_rebuild

    def spying_anonymise(**kwargs) -> int:
        schemas.append(connection.schema_name)
        return anonymise(**kwargs)

    def spying_rebuild() -> bool:
        schemas.append(connection.schema_name)
        return rebuild()

    monkeypatch.setattr(erasure, "rewards_anonymise_delivered", spying_anonymise)
    monkeypatch.setattr(rollups, "reward_totals_rebuild", spying_rebuild)
    return schemas


def tick(task, entered: list[str]) -> tuple[int, list[str]]:
    """One run of the task from the public schema, as beat starts it: (its result, the schemas it entered)."""
    entered.clear()
    connection.set_schema_to_public()
    result = task()
    return result, list(entered)


def due_at(kind: str, schema: str) -> list[datetime]:
    return list(TenantDueEvent.objects.filter(kind=kind, schema_name=schema).values_list("due_at", flat=True))


def delivered(api, tenant, shop, at: datetime) -> Reward:
    """A reward ordered through the API and delivered at `at` by the fulfilment code."""
    reward_id = api.post("/api/v1/orders", digital_order(shop.coffee_usd)).json()["rewards"][0]["id"]
    with tenant_context(tenant), freeze_time(at):
        reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
    assert reward.delivered_at == at
    return reward


def recipient(tenant, reward: Reward) -> str:
    with tenant_context(tenant):
        return Reward.objects.get(pk=reward.pk).recipient_name


def test_retention_enters_only_schemas_with_a_delivery_due_and_anonymises_it_at_its_time(
    api_a, api_b, funded_a, tenant_b, shop, entered
):
    from funds.services import funds_deposit

    quiet = [tenant_create(slug=f"quiet{n}", name=f"Quiet {n}") for n in range(3)]
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100.00")
    tick(recipient_retention_task, entered)  # whatever earlier tests left noted
    with CaptureQueriesContext(connection) as queries:
        assert tick(recipient_retention_task, entered) == (0, [])
    assert len(queries) == 1  # the due query in public; no schema entered

    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 30}).status_code == 200
    start = timezone.now()
    reward = delivered(api_a, funded_a, shop, start)
    delivered(api_b, tenant_b, shop, start)  # beta keeps recipients (no retention period)
    # Alpha (settings changed, a delivery) and beta (a delivery) were noted; nobody else is entered.
    anonymised, schemas = tick(recipient_retention_task, entered)
    assert anonymised == 0 and sorted(schemas) == sorted([funded_a.schema_name, tenant_b.schema_name])
    assert not {t.schema_name for t in quiet} & set(schemas)
    # Alpha is due when its delivery is 30 days old; beta, without a period, is not due at all.
    assert due_at(RETENTION, funded_a.schema_name) == [start + timedelta(days=30)]
    assert due_at(RETENTION, tenant_b.schema_name) == []

    with freeze_time(start + timedelta(days=29, hours=23)):
        assert tick(recipient_retention_task, entered) == (0, [])
    with freeze_time(start + timedelta(days=30, seconds=1)):
        assert tick(recipient_retention_task, entered) == (1, [funded_a.schema_name])
        assert tick(recipient_retention_task, entered) == (0, [])  # nothing else delivered: not due again
    assert recipient(funded_a, reward) == ERASED
    assert due_at(RETENTION, funded_a.schema_name) == []
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_a_new_delivery_and_a_changed_period_are_each_picked_up_at_their_time(api_a, funded_a, shop, entered):
    start = timezone.now()
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 30}).status_code == 200
    first = delivered(api_a, funded_a, shop, start)
    tick(recipient_retention_task, entered)
    assert due_at(RETENTION, funded_a.schema_name) == [start + timedelta(days=30)]

    later = delivered(api_a, funded_a, shop, start + timedelta(days=1))  # its delivery notes the schema…
    assert len(due_at(RETENTION, funded_a.schema_name)) == 2
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 10}).status_code == 200  # …and so does this
    assert tick(recipient_retention_task, entered) == (0, [funded_a.schema_name])
    assert due_at(RETENTION, funded_a.schema_name) == [start + timedelta(days=10)]  # the shorter period

    with freeze_time(start + timedelta(days=10, seconds=1)):
        assert tick(recipient_retention_task, entered) == (1, [funded_a.schema_name])
    assert recipient(funded_a, first) == ERASED and recipient(funded_a, later) == "Ada Lovelace"
    assert due_at(RETENTION, funded_a.schema_name) == [start + timedelta(days=11)]  # the later delivery's turn
    with freeze_time(start + timedelta(days=10, hours=23)):
        assert tick(recipient_retention_task, entered) == (0, [])
    with freeze_time(start + timedelta(days=11, seconds=1)):
        assert tick(recipient_retention_task, entered) == (1, [funded_a.schema_name])
    assert recipient(funded_a, later) == ERASED

    # No period any more: one visit for the change, then the schema is never entered for retention.
    newest = delivered(api_a, funded_a, shop, start + timedelta(days=12))
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": None}).status_code == 200
    with freeze_time(start + timedelta(days=400)):
        assert tick(recipient_retention_task, entered) == (0, [funded_a.schema_name])
        assert tick(recipient_retention_task, entered) == (0, [])
    assert recipient(funded_a, newest) == "Ada Lovelace" and due_at(RETENTION, funded_a.schema_name) == []


def test_a_retention_run_that_dies_in_a_schema_leaves_it_for_the_next(api_a, funded_a, shop, entered, monkeypatch):
    start = timezone.now()
    assert api_a.patch("/api/v1/privacy", {"recipient_retention_days": 1}).status_code == 200
    reward = delivered(api_a, funded_a, shop, start)
    tick(recipient_retention_task, entered)
    anonymise = erasure.rewards_anonymise_delivered

    def dying(**kwargs) -> int:
        raise ConnectionError("worker lost its database mid-run")

    with freeze_time(start + timedelta(days=1, seconds=1)):
        monkeypatch.setattr(erasure, "rewards_anonymise_delivered", dying)
        with pytest.raises(ConnectionError):
            tick(recipient_retention_task, entered)
        assert due_at(RETENTION, funded_a.schema_name) == [start + timedelta(days=1)]  # not consumed
        monkeypatch.setattr(erasure, "rewards_anonymise_delivered", anonymise)
        assert tick(recipient_retention_task, entered) == (1, [funded_a.schema_name])
    assert recipient(funded_a, reward) == ERASED


@contextmanager
def compaction_running(tenant) -> Iterator[None]:
    """Another connection holds the rollups' compaction lock in `tenant`'s schema (a compaction in progress there)
    until the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            connection.set_tenant(tenant)
            with transaction.atomic():
                assert rollups.try_fold_lock(rollups._COMPACT_LOCK)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join()


def test_totals_are_rebuilt_where_the_hours_changed_and_at_each_schemas_slot(
    api_a, funded_a, tenant_b, shop, entered, monkeypatch, settings
):
    from core.rollups import fold_deltas
    from orders.models import RewardStatDelta
    from orders.reports import reward_status_counts

    def totals_right() -> bool:
        with tenant_context(funded_a):
            counted: dict[str, int] = {}
            for status in Reward.objects.values_list("status", flat=True):
                counted[status] = counted.get(status, 0) + 1
            return {status: n for status, n in reward_status_counts().items() if n} == counted

    quiet = tenant_create(slug="quiet", name="Quiet")
    now = timezone.now() + timedelta(minutes=1)  # past the notes' times (the database's clock)
    with freeze_time(now):
        tick(reward_totals_rebuild_task, entered)  # whatever earlier tests left noted
        with CaptureQueriesContext(connection) as queries:
            assert tick(reward_totals_rebuild_task, entered) == (0, [])
        assert len(queries) == 1  # the due query in public; no schema entered

        assert api_a.post("/api/v1/orders", digital_order(shop.coffee_usd)).status_code == 201
        assert tick(reward_totals_rebuild_task, entered) == (0, [])  # deltas only: the hours did not change yet
        rollups_compact_task()  # folds them into the hours: alpha noted
        assert tick(reward_totals_rebuild_task, entered) == (1, [funded_a.schema_name])
        [slot] = due_at(TOTALS, funded_a.schema_name)
        assert now < slot <= now + timedelta(seconds=settings.REWARD_TOTALS_RECOMPUTE_SECONDS)
        assert tick(reward_totals_rebuild_task, entered) == (0, [])

        # A compaction by older code folds into the hours only (a rolling deploy): the write notes alpha, and a run
        # that dies there leaves it noted; the next puts the totals right.
        with tenant_context(funded_a):
            reward = Reward.objects.first()
            Reward.objects.filter(pk=reward.pk).update(status="canceled")
            fold_deltas(deltas=RewardStatDelta._meta.db_table, rollup=RewardStat._meta.db_table,
                        keys=["hour", "status", "currency", "engaged"], sums=["rewards", "amount"])  # fmt: skip
        assert not totals_right()
        rebuild = rollups.reward_totals_rebuild

        def dying() -> bool:
            raise ConnectionError("worker lost its database mid-run")

        monkeypatch.setattr(rollups, "reward_totals_rebuild", dying)
        with pytest.raises(ConnectionError):
            tick(reward_totals_rebuild_task, entered)
        monkeypatch.setattr(rollups, "reward_totals_rebuild", rebuild)
        assert len(due_at(TOTALS, funded_a.schema_name)) == 2  # its slot, and the change: neither consumed
        assert tick(reward_totals_rebuild_task, entered) == (1, [funded_a.schema_name])
        assert totals_right()
        assert due_at(TOTALS, funded_a.schema_name) == [slot]  # a schema keeps its slot

    # The safety net: at its slot each schema is rebuilt with no change noted, and only the schemas whose slot came.
    monkeypatch.setattr(rollups, "reward_totals_rebuild", lambda: entered.append(connection.schema_name) or True)
    with freeze_time(slot + timedelta(seconds=1)):
        due = TenantDueEvent.objects.filter(kind=TOTALS, due_at__lte=slot + timedelta(seconds=1))
        slots_come = set(due.values_list("schema_name", flat=True))
        rebuilt, schemas = tick(reward_totals_rebuild_task, entered)
        assert funded_a.schema_name in schemas and set(schemas) <= slots_come and rebuilt == len(schemas)
        assert quiet.schema_name not in schemas and tenant_b.schema_name not in schemas  # never noted
        assert tick(reward_totals_rebuild_task, entered) == (0, [])
    assert due_at(TOTALS, funded_a.schema_name) == [slot + timedelta(seconds=settings.REWARD_TOTALS_RECOMPUTE_SECONDS)]
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []


def test_a_rebuild_that_finds_a_compaction_running_is_due_again_at_once(funded_a, entered):
    TenantDueEvent.objects.filter(kind=TOTALS).delete()  # (not a run: a rebuild here would hold the lock)
    with tenant_context(funded_a):  # the hours change: alpha noted
        RewardStat.objects.create(hour=timezone.now().replace(minute=0, second=0, microsecond=0), status="pending",
                                  currency="USD", rewards=1, amount=10)  # fmt: skip
    now = timezone.now() + timedelta(minutes=1)
    with compaction_running(funded_a), freeze_time(now):
        assert tick(reward_totals_rebuild_task, entered) == (0, [funded_a.schema_name])
        assert due_at(TOTALS, funded_a.schema_name) == [now]  # not its slot: the next run tries again
    with freeze_time(now + timedelta(hours=1)):
        assert tick(reward_totals_rebuild_task, entered) == (1, [funded_a.schema_name])
        [slot] = due_at(TOTALS, funded_a.schema_name)
        assert slot > now + timedelta(hours=1)
    with tenant_context(funded_a):
        assert list(RewardStatTotal.objects.values_list("status", "rewards")) == [("pending", 1)]


def test_safety_net_slots_spread_the_schemas_evenly_over_the_period(db, settings):
    """Each schema's slot is fixed by its name: an even share of the schemas comes due in each hour."""
    settings.REWARD_TOTALS_RECOMPUTE_SECONDS = 86400
    now = timezone.now()
    per_hour = [0] * 24
    for n in range(2400):
        connection.set_schema(f"t{n:05d}")  # only the name is read
        slot = rollups.reward_totals_next_due()
        assert now < slot <= now + timedelta(days=1)
        per_hour[int((slot - now).total_seconds() // 3600)] += 1
    connection.set_schema_to_public()
    assert min(per_hour) >= 60 and max(per_hour) <= 140  # 100 an hour on average


def test_a_compaction_in_one_schema_turns_no_other_schema_away(funded_a, tenant_b):
    """The compaction lock is per schema: while one tenant's rollups are being folded, another tenant's compaction
    and totals rebuild go ahead, and the busy tenant's own are turned away (it is due again at once)."""
    with compaction_running(funded_a):
        with tenant_context(tenant_b):
            assert rollups.reward_totals_rebuild() is True
            with transaction.atomic():
                assert rollups.try_fold_lock(rollups._COMPACT_LOCK)
        with tenant_context(funded_a):
            assert rollups.reward_totals_rebuild() is False
            assert rollups.rollups_compact() == (0, 0)
