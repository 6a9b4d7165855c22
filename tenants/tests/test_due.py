"""Sweeps visit only the schemas with work (tenants.due), and miss nothing: scheduled rewards in a few tenants among
idle ones are all sent when due, a sweep that dies mid-visit loses nothing, and work noted during a visit stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from core.db import connection
from fulfillment import tasks as fulfilment_tasks
from fulfillment.services import reward_fulfil
from funds.services import funds_deposit
from orders.models import Reward, RewardStatus
from tenants.due import FULFILMENT
from tenants.models import TenantDueEvent
from tenants.services import tenant_create
from testsupport.orders import digital_order


@pytest.fixture
def sweep(monkeypatch):
    """Runs beat's fulfilment sweep in-process: records the schemas it entered and the rewards it queued, and
    fulfils each queued reward at once (as the worker would)."""
    import fulfillment.services as services  # the task imports rewards_due from here when it runs

    visited: list[str] = []
    queued: list[str] = []

    rewards_due = services.rewards_due

    def spying_due() -> list[str]:
        visited.append(connection.schema_name)
        return rewards_due()

    def fulfil_now(reward_id: str) -> None:
        queued.append(reward_id)
        reward_fulfil(reward_id=reward_id)

    monkeypatch.setattr(services, "rewards_due", spying_due)
    monkeypatch.setattr(fulfilment_tasks.reward_fulfil_task, "delay", fulfil_now)

    def run() -> tuple[list[str], list[str]]:
        visited.clear()
        queued.clear()
        connection.set_schema_to_public()
        fulfilment_tasks.fulfilment_sweep()
        return list(visited), list(queued)

    return run


def scheduled_order(api, product, deliver_at) -> str:
    body = digital_order(product, "10.00")
    body["rewards"][0]["deliver_at"] = deliver_at.isoformat()
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()["rewards"][0]["id"]


def test_only_tenants_with_work_are_visited_and_each_scheduled_reward_is_sent_when_due(
    api_a, api_b, funded_a, tenant_b, shop, sweep
):
    idle = [tenant_create(slug=f"idle{n}", name=f"Idle {n}") for n in range(6)]
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100.00")
    start = timezone.now()
    soon = scheduled_order(api_a, shop.coffee_usd, start + timedelta(hours=1))
    later = scheduled_order(api_b, shop.coffee_usd, start + timedelta(hours=2))

    # The orders noted their schemas: the next sweep enters those two only, finds nothing due yet, and notes
    # when each schema's reward falls due.
    visited, queued = sweep()
    assert set(visited) == {funded_a.schema_name, tenant_b.schema_name} and queued == []
    idle_schemas = {t.schema_name for t in idle} | {t.sandbox.schema_name for t in idle}
    assert not idle_schemas & set(visited)

    with freeze_time(start + timedelta(minutes=30)):  # nothing due anywhere: no schema is entered
        assert sweep() == ([], [])
    # Each reward is sent once, when due. (Sending it notes its schema again: the next sweep looks once more.)
    with freeze_time(start + timedelta(hours=1, seconds=1)):
        assert sweep() == ([funded_a.schema_name], [soon])
    with freeze_time(start + timedelta(hours=2, seconds=1)):
        visited, queued = sweep()
        assert queued == [later] and tenant_b.schema_name in visited
    with freeze_time(start + timedelta(hours=3)):
        visited, queued = sweep()
        assert queued == [] and set(visited) <= {funded_a.schema_name, tenant_b.schema_name}
        assert sweep() == ([], [])
    for tenant, reward_id in ((funded_a, soon), (tenant_b, later)):
        with tenant_context(tenant):
            assert Reward.objects.get(pk=reward_id).status == RewardStatus.DELIVERED


def test_a_sweep_that_dies_mid_visit_loses_nothing(api_a, funded_a, shop, sweep, monkeypatch):
    import fulfillment.services as services

    start = timezone.now()
    reward_id = scheduled_order(api_a, shop.coffee_usd, start + timedelta(minutes=5))
    sweep()  # notes when it falls due
    spying_due = services.rewards_due

    def dying(*args, **kwargs):
        raise ConnectionError("worker lost its database mid-sweep")

    with freeze_time(start + timedelta(minutes=6)):
        monkeypatch.setattr(services, "rewards_due", dying)
        with pytest.raises(ConnectionError):
            sweep()
        connection.set_schema_to_public()
        monkeypatch.setattr(services, "rewards_due", spying_due)
        # The schema's events were not consumed: the next sweep enters it and sends the reward.
        assert sweep() == ([funded_a.schema_name], [reward_id])
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == RewardStatus.DELIVERED


def test_work_noted_while_a_schema_is_visited_is_visited_again(api_a, funded_a, shop, sweep, monkeypatch):
    """A write that commits while the sweep is inside the schema (after it read the schema's events) keeps its
    own event: the visit deletes only the events it read before entering."""
    import fulfillment.services as services

    scheduled_order(api_a, shop.coffee_usd, timezone.now() + timedelta(days=1))
    spying_due = services.rewards_due

    def during_visit() -> list[str]:
        TenantDueEvent.objects.create(schema_name=connection.schema_name, kind=FULFILMENT, due_at=timezone.now())
        return spying_due()

    monkeypatch.setattr(services, "rewards_due", during_visit)
    assert sweep()[0] == [funded_a.schema_name]
    monkeypatch.setattr(services, "rewards_due", spying_due)
    assert sweep()[0] == [funded_a.schema_name]  # the event written mid-visit
    assert sweep()[0] == []  # and then nothing until the reward's day


def test_a_delivered_reward_notes_nothing_and_an_open_one_does(api_a, funded_a, shop, sweep):
    def events() -> int:
        return TenantDueEvent.objects.filter(schema_name=funded_a.schema_name, kind=FULFILMENT).count()

    reward_id = scheduled_order(api_a, shop.coffee_usd, timezone.now() + timedelta(days=1))
    assert events() == 1  # one per transaction, however many statements touched rewards
    sweep()
    assert events() == 1  # the reward's delivery time
    with tenant_context(funded_a):
        Reward.objects.filter(pk=reward_id).update(status=RewardStatus.CANCELED)
    assert events() == 1  # a reward leaving the open states notes nothing
    with tenant_context(funded_a):
        Reward.objects.filter(pk=reward_id).update(status=RewardStatus.PENDING)
    assert events() == 2
