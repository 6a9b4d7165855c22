"""Automations that award points: the API shape, one award per (automation, person, occurrence) through the run
row, and the insufficient-funds path (a failed run, retried the same local day once funds arrive)."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django_tenants.utils import tenant_context

from points.tests.conftest import make_person
from testsupport.problems import assert_problem

TODAY = datetime.now(UTC).date()  # the preview counts from the real day
NINE = datetime.combine(TODAY, time(9), tzinfo=UTC)


def test_a_birthday_automation_awards_points_once_and_retries_when_funded(tenant_a, api_a, kudos):
    from automations.models import AutomationRun
    from automations.running import automations_tick
    from funds.services import funds_deposit
    from points.models import PointsAward
    from points.services import person_balance

    def create(points: int) -> dict:
        return api_a.post("/api/v1/automations", {"name": f"{points} kudos", "trigger": {"type": "birthday"},
                                                  "reward": {"points": points, "program": "kudos"}})  # fmt: skip

    small = create(500)
    assert small.status_code == 201, small.content
    assert small.json()["reward"] == {"points": 500, "program": "kudos", "message": ""}
    for reward in ({"points": 0, "program": "kudos"}, {"points": 5, "program": "nope"}):
        assert_problem(api_a.post("/api/v1/automations", {"name": "x", "trigger": {"type": "birthday"},
                                                          "reward": reward}), 422, "validation_error")  # fmt: skip
    big = create(150_000).json()  # 1,500.00 USD: more than the tenant's 1,000.00
    ana = make_person(tenant_a, "E-1", birthday=TODAY.strftime("%m-%d"))
    preview = api_a.get(f"/api/v1/automations/{small.json()['id']}/preview", {"days": 1}).json()
    assert preview["items"][0]["points"] == 500 and preview["total"] == {"points": 500}
    with tenant_context(tenant_a):
        automations_tick(now=NINE)
        automations_tick(now=NINE)
        runs = {str(run.automation_id): run for run in AutomationRun.objects.all()}
        assert (runs[small.json()["id"]].status, runs[big["id"]].status) == ("sent", "failed")
        assert runs[big["id"]].failure_code == "insufficient_funds"
        funds_deposit(currency="USD", amount="1000.00")
        automations_tick(now=NINE.replace(hour=10))
        automations_tick(now=NINE.replace(hour=11))
        assert set(AutomationRun.objects.values_list("status", flat=True)) == {"sent"}
        assert sorted(PointsAward.objects.values_list("points", flat=True)) == [500, 150_000]  # once each
        assert person_balance(program=kudos, person_id=ana.pk) == 150_500
        assert {str(r.points_award_id) for r in AutomationRun.objects.all()} == {
            str(a.id) for a in PointsAward.objects.all()
        }
