"""Earning rules: activities earn fixed points, points per unit or cashback, within caps; idempotent by the
activity's external_id; a refund naming the original takes back what it earned; rules' API and isolation."""

from __future__ import annotations

from decimal import Decimal

from django_tenants.utils import tenant_context

from points.models import PointsAward
from testsupport.funds import balances
from testsupport.problems import assert_problem


def activity(api, external_id, type_="purchase", **extra):
    body = {"external_id": external_id, "person_external_id": "E-1", "type": type_,
            "occurred_at": "2026-12-06T10:00:00Z", **extra}  # fmt: skip
    return api.post("/api/v1/activities", body)


def test_cashback_and_fixed_rules_with_caps_and_refund(tenant_a, api_a, kudos, ana):
    cashback = api_a.post("/api/v1/earning-rules", {"program": "kudos", "activity_type": "purchase",
                                                    "cashback_percent": "2", "cap_per_activity": 1000,
                                                    "cap_per_period": 1500})  # fmt: skip
    assert cashback.status_code == 201, cashback.content
    fixed = api_a.post("/api/v1/earning-rules", {"program": "kudos", "activity_type": "deal.closed",
                                                 "points_fixed": 250})  # fmt: skip
    assert fixed.status_code == 201
    first = activity(api_a, "p-1", amount="120.00", currency="USD")  # 2% of 120.00 = 2.40 USD = 240 points
    assert first.status_code == 201, first.content
    assert first.json()["points_earned"] == 240
    assert first.json()["cashback"] == [{"amount": "2.40", "currency": "USD"}]
    again = activity(api_a, "p-1", amount="120.00", currency="USD")
    assert again.json()["points_earned"] == 240  # the same activity again earns nothing more
    big = activity(api_a, "p-2", amount="9000.00", currency="USD")  # 18,000 points, capped at 1,000 per activity
    assert big.json()["points_earned"] == 1000
    capped = activity(api_a, "p-3", amount="100.00", currency="USD")  # 200 points, but 1,500 a month: 260 left
    assert capped.json()["points_earned"] == 200
    over = activity(api_a, "p-4", amount="100.00", currency="USD")
    assert over.json()["points_earned"] == 60
    assert activity(api_a, "d-1", "deal.closed").json()["points_earned"] == 250
    assert activity(api_a, "x-1", "page.viewed").json().get("points_earned", 0) == 0
    refund = activity(api_a, "r-1", "refund", reverses="p-2")
    assert refund.status_code == 201 and refund.json()["points_reversed"] == 1000
    points = api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]
    assert points["balance"] == 240 + 200 + 60 + 250
    with tenant_context(tenant_a):
        assert PointsAward.objects.count() == 5
        assert balances("USD")[1] == Decimal("7.50")


def test_rule_refusals_and_isolation(tenant_a, api_a, api_b, kudos):
    bad = {"program": "kudos", "activity_type": "", "points_fixed": 5, "cashback_percent": "200"}
    body = assert_problem(api_a.post("/api/v1/earning-rules", bad), 422)
    assert {"activity_type", "points_fixed", "cashback_percent"} <= set(body["errors"])
    assert "program" in assert_problem(api_a.post("/api/v1/earning-rules", {
        "program": "nope", "activity_type": "x", "points_fixed": 1}), 422)["errors"]  # fmt: skip
    rule = api_a.post("/api/v1/earning-rules", {"program": "kudos", "activity_type": "x", "points_fixed": 1}).json()
    assert api_a.patch(f"/api/v1/earning-rules/{rule['id']}", {"enabled": False}).json()["enabled"] is False
    assert_problem(api_b.get(f"/api/v1/earning-rules/{rule['id']}"), 404)
    assert_problem(api_b.delete(f"/api/v1/earning-rules/{rule['id']}"), 404)
    assert [r["id"] for r in api_a.get("/api/v1/earning-rules").json()["results"]] == [rule["id"]]
    assert api_a.delete(f"/api/v1/earning-rules/{rule['id']}").status_code == 204
    assert api_a.get("/api/v1/earning-rules").json()["results"] == []
