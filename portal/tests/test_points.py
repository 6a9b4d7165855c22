"""The Points page: award to a person or a team (resubmitting awards nobody twice), take an award back, and the
points liability on the Funds page."""

from __future__ import annotations

from decimal import Decimal

from django_tenants.utils import tenant_context

from points.models import PointsAward
from points.selectors import points_invariant_violations
from points.tests.conftest import KUDOS, make_person
from programs.services import program_create


def test_award_to_a_team_then_take_one_back(signed_in, funded_a, tenant_a):
    with tenant_context(tenant_a):
        program_create(slug="kudos", name="Kudos", points=KUDOS)
    for number, department in ((1, "Sales"), (2, "Sales"), (3, "Ops")):
        make_person(tenant_a, f"E-{number}", department=department)
    client, _ = signed_in("manager")
    form = {"program": "kudos", "department": "sales", "points": "300", "reason": "Quarter", "request_id": "r1"}
    assert client.post("/points/", form).status_code == 302
    assert client.post("/points/", form).status_code == 302  # the same form again: nobody twice
    with tenant_context(tenant_a):
        assert sorted(PointsAward.objects.values_list("person__external_id", "points")) == [("E-1", 300), ("E-2", 300)]
    page = client.get("/points/").content.decode()
    assert "Recent awards" in page and "6.00 USD" in page
    response = client.post("/points/", {**form, "department": "", "person": "nobody", "request_id": "r2"})
    assert 'id="id_person_error"' in response.content.decode()
    with tenant_context(tenant_a):
        award = PointsAward.objects.filter(person__external_id="E-1").get()
    assert client.post(f"/points/awards/{award.id}/reverse").status_code == 302
    with tenant_context(tenant_a):
        assert PointsAward.objects.get(pk=award.pk).remaining == 0
        assert points_invariant_violations() == []
    funds = signed_in("finance")[0].get("/funds/").content.decode()
    assert 'data-testid="points-liability"' in funds and "3.00 USD" in funds


def test_earning_rules_page(signed_in, tenant_a, funded_a):
    from points.models import EarningRule

    with tenant_context(tenant_a):
        program_create(slug="kudos", name="Kudos", points=KUDOS)
    client, _ = signed_in("manager")
    assert 'href="/points/rules/"' in client.get("/points/").content.decode()
    bad = client.post("/points/rules/", {"program": "kudos", "activity_type": "purchase", "way": "cashback_percent",
                                         "value": "250", "period": "monthly"})  # fmt: skip
    assert 'id="id_value_error"' in bad.content.decode()
    ok = client.post("/points/rules/", {"program": "kudos", "activity_type": "purchase", "way": "cashback_percent",
                                        "value": "2.5", "cap_per_activity": "500", "period": "monthly"})  # fmt: skip
    assert ok.status_code == 302
    with tenant_context(tenant_a):
        rule = EarningRule.objects.get()
    assert (rule.cashback_percent, rule.cap_per_activity) == (Decimal("2.5"), 500)
    assert "2.5% cashback" in client.get("/points/rules/").content.decode()
    client.post(f"/points/rules/{rule.id}/disable")
    with tenant_context(tenant_a):
        assert EarningRule.objects.get().enabled is False
    client.post(f"/points/rules/{rule.id}/delete")
    with tenant_context(tenant_a):
        assert not EarningRule.objects.exists()
    assert signed_in("viewer")[0].get("/points/rules/").status_code == 403
