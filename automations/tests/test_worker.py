"""The real scheduler task on real workers, with a pinned clock: two beats ticking at once and every worker
killed half way still send each birthday exactly once, in each person's own time zone."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from audit.actors import Actor
from automations.models import AutomationRun
from automations.services import automation_create
from automations.tasks import automations_schedule
from funds.selectors import ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Reward
from people.models import Person
from testsupport.catalog import make_shop
from testsupport.waiting import wait_for

NOW = "2026-12-07T09:30:00+00:00"  # 17:30 in Kuala Lumpur, 09:30 UTC (the tenant's zone), 04:30 in New York
ZONES = {"Asia/Kuala_Lumpur": 120, "": 120, "America/New_York": 20}


@pytest.mark.worker
def test_two_beats_and_a_killed_worker_send_each_birthday_once(committed_tenant, celery_worker_process):
    actor = Actor.cli()
    with tenant_context(committed_tenant):
        shop = make_shop()
        funds_deposit(currency="USD", amount="100000.00")
        reward = {"product_id": str(shop.coffee_usd.id), "amount": "10.00"}
        automation_create(actor=actor, data={"name": "Birthday", "trigger": {"type": "birthday"}, "reward": reward})
        people = [
            Person(external_id=f"{zone or 'tenant'}-{index}", name=f"P {index}", email=f"p{index}@example.com",
                   timezone=zone, birthday_month=12, birthday_day=7)
            for zone, count in ZONES.items() for index in range(count)
        ]  # fmt: skip
        Person.objects.bulk_create(people)

    def runs() -> int:
        with tenant_context(committed_tenant):
            return AutomationRun.objects.count()

    pool = celery_worker_process
    pool.start(1)  # two workers: the two beats' ticks run at the same time
    automations_schedule.delay(NOW)
    automations_schedule.delay(NOW)
    wait_for(lambda: runs() >= 5, timeout=60, message="the ticks started sending")
    pool.kill()  # every worker, mid-tick: their transactions roll back, their tasks are never acknowledged
    pool.start(1)
    automations_schedule.delay(NOW)  # the next minute's beat
    due = ZONES["Asia/Kuala_Lumpur"] + ZONES[""]
    wait_for(lambda: runs() == due, timeout=120, message=f"{due} birthdays sent")
    with tenant_context(committed_tenant):
        per_person = list(Reward.objects.values_list("person_id", flat=True))
        assert len(per_person) == len(set(per_person)) == due  # one reward each
        assert not AutomationRun.objects.filter(person__timezone="America/New_York").exists()  # 04:30 there
        assert set(AutomationRun.objects.values_list("status", flat=True)) == {"sent"}
        assert ledger_invariant_violations() == []
