"""Automations over the API: create (and refusals), list, change, preview with cost, runs, delete; an activity
that triggers one; orders filtered by automation; another tenant sees nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django_tenants.utils import tenant_context

from automations.running import automations_tick
from testsupport.problems import assert_problem


def body(shop, **overrides):
    return {"name": "Birthday", "trigger": {"type": "birthday"}, "audience": {"department": ["Sales"]},
            "reward": {"product_id": str(shop.coffee_usd.id), "amount": "25.00", "message": "Happy birthday!"},
            "send_time": "09:00", **overrides}  # fmt: skip


def test_create_preview_runs_and_isolation(api_a, api_b, funded_a, shop, django_assert_max_num_queries):
    created = api_a.post("/api/v1/automations", body(shop))
    assert created.status_code == 201, created.content
    automation = created.json()
    assert automation["reward"] == {"product_id": str(shop.coffee_usd.id), "amount": "25.00", "currency": "USD",
                                    "delivery_method": "email", "message": "Happy birthday!"}  # fmt: skip
    assert (automation["send_time"], automation["days_offset"], automation["enabled"]) == ("09:00", 0, True)
    soon = datetime.now(UTC) + timedelta(days=3)
    for name, department in (("Ana", "Sales"), ("Ben", "Sales"), ("Cal", "Ops")):
        api_a.post("/api/v1/people", {"external_id": name, "name": name, "email": f"{name}@example.com",
                                      "department": department, "birthday": soon.strftime("%m-%d")})  # fmt: skip
    preview = api_a.get(f"/api/v1/automations/{automation['id']}/preview", {"days": 7}).json()
    assert sorted(item["name"] for item in preview["items"]) == ["Ana", "Ben"]
    assert preview["total"] == {"amount": "50.00", "currency": "USD"}
    assert preview["items"][0]["occurs_on"] == soon.date().isoformat()
    assert api_a.get(f"/api/v1/automations/{automation['id']}/preview", {"days": 2}).json()["items"] == []
    assert_problem(api_a.get(f"/api/v1/automations/{automation['id']}/preview", {"days": 400}), 422)

    with tenant_context(funded_a):
        automations_tick(now=soon.replace(hour=9, minute=5))
    runs = api_a.get(f"/api/v1/automations/{automation['id']}/runs").json()["results"]
    assert [run["status"] for run in runs] == ["sent", "sent"]
    orders = api_a.get("/api/v1/orders", {"automation_id": automation["id"]}).json()["results"]
    assert {order["id"] for order in orders} == {run["order_id"] for run in runs}
    assert all(order["automation_id"] == automation["id"] for order in orders)

    paused = api_a.patch(f"/api/v1/automations/{automation['id']}", {"enabled": False}).json()
    assert paused["enabled"] is False and paused["name"] == "Birthday"
    with django_assert_max_num_queries(8):
        api_a.get("/api/v1/automations")
    with django_assert_max_num_queries(10):
        api_a.get(f"/api/v1/automations/{automation['id']}/runs")
    for path in ("", "/preview", "/runs"):
        assert_problem(api_b.get(f"/api/v1/automations/{automation['id']}{path}"), 404)
    assert api_b.get("/api/v1/automations").json()["results"] == []
    assert api_a.delete(f"/api/v1/automations/{automation['id']}").status_code == 204
    assert_problem(api_a.get(f"/api/v1/automations/{automation['id']}"), 404)
    assert len(api_a.get("/api/v1/orders", {"automation_id": automation["id"]}).json()["results"]) == 2


def test_refusals_name_the_field(api_a, shop):
    cases = [
        ({"trigger": {"type": "moon_phase"}}, "trigger.type"),
        ({"trigger": {"type": "work_anniversary", "years": [-1]}}, "trigger.years"),
        ({"trigger": {"type": "date_attribute"}}, "trigger.attribute"),
        ({"trigger": {"type": "activity"}}, "trigger.activity_type"),
        ({"trigger": {"type": "activity", "activity_type": "deal\x00closed"}}, "trigger.activity_type"),  # was a 500
        ({"audience": {"department": ["Sales\x1b[2J"]}}, "audience.department"),
        ({"send_time": "9am"}, "send_time"),
        ({"audience": {"shoe_size": [42]}}, "audience"),
        ({"reward": {"product_id": str(shop.coffee_usd.id), "amount": "30.00"}}, "reward.amount"),
        ({"reward": {"product_id": "00000000-0000-0000-0000-000000000000", "amount": "25"}}, "reward.product_id"),
        ({"reward": {"product_id": str(shop.hamper_usd.id), "amount": "50"}}, "reward.product_id"),
        ({"reward": {"points": 500, "program": "no-such-program"}}, "reward.program"),
    ]
    for overrides, field in cases:
        response = api_a.post("/api/v1/automations", body(shop, **overrides))
        assert field in assert_problem(response, 422, "validation_error")["errors"], (overrides, response.json())
    assert api_a.get("/api/v1/automations").json()["results"] == []


def test_an_activity_triggers_its_automation_once(api_a, funded_a, shop):
    automation = api_a.post("/api/v1/automations", body(shop, name="Deal", trigger={"type": "activity",
                                                                                    "activity_type": "deal.closed"},
                                                        audience={}, send_time="00:00")).json()  # fmt: skip
    person = api_a.post("/api/v1/people", {"external_id": "rep", "name": "Rep", "email": "rep@example.com"}).json()
    activity = {"external_id": "deal-1", "person_id": person["id"], "type": "deal.closed",
                "occurred_at": datetime.now(UTC).isoformat()}  # fmt: skip
    first = api_a.post("/api/v1/activities", activity)
    assert first.status_code == 201, first.content
    [fired] = first.json()["automations"]
    assert fired["automation_id"] == automation["id"] and fired["status"] == "sent"
    assert api_a.post("/api/v1/activities", activity).json() == first.json()  # a replay sends nothing more
    other = api_a.post("/api/v1/activities", {**activity, "external_id": "note-1", "type": "note.added"})
    assert "automations" not in other.json()
    orders = api_a.get("/api/v1/orders", {"automation_id": automation["id"]}).json()["results"]
    assert [order["id"] for order in orders] == [fired["order_id"]]
    assert orders[0]["rewards"][0]["person_id"] == person["id"]
