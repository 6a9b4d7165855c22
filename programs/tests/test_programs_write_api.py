"""Tenants run their own programs over the API: create and change them, with a points currency."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from programs.models import Program
from testsupport.problems import assert_problem

KUDOS = {"name": "Kudos", "points_per_unit": 100, "currency": "usd", "expire_after_days": 365, "self_redeem": True}


def test_create_and_change_a_program_with_points(tenant_a, api_a, shop):
    product = shop.coffee_usd
    response = api_a.post("/api/v1/programs", {
        "slug": "kudos", "name": "Kudos", "allowed_products": [str(product.id)], "default_locale": "ms",
        "budget": {"amount": "5000", "currency": "USD", "period": "monthly"}, "points": KUDOS,
    })  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["points"] == {**KUDOS, "currency": "USD"}
    assert body["allowed_product_ids"] == [str(product.id)] and body["default_locale"] == "ms"
    assert body["budget"] == {"amount": "5000.00", "currency": "USD", "period": "monthly"}

    response = api_a.patch("/api/v1/programs/kudos", {"name": "Kudos!", "points": {**KUDOS, "name": "Stars"}})
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["points"]["name"]) == ("Kudos!", "Stars")
    assert response.json()["budget"]["amount"] == "5000.00"  # what was not sent stays
    with tenant_context(tenant_a):
        assert list(AuditEvent.objects.filter(object_id="kudos").values_list("action", flat=True).order_by("id")) == [
            "program.create", "program.update"]  # fmt: skip


def test_program_refusals_change_nothing(tenant_a, api_a, make_api_client):
    body = assert_problem(api_a.post("/api/v1/programs", {
        "slug": "Bad Slug", "name": " ", "default_locale": "fr",
        "points": {"name": "", "points_per_unit": 3, "currency": "XX", "expire_after_days": 0},
    }), 422, "validation_error")  # fmt: skip
    assert set(body["errors"]) >= {"slug", "name", "default_locale", "points.name", "points.points_per_unit",
                                   "points.currency", "points.expire_after_days"}  # fmt: skip
    assert api_a.post("/api/v1/programs", {"slug": "kudos", "name": "K", "points": KUDOS}).status_code == 201
    # The rate and currency are fixed once points exist at them; removing the points currency is refused too.
    body = assert_problem(api_a.patch("/api/v1/programs/kudos", {"points": {**KUDOS, "points_per_unit": 10}}), 422)
    assert "points.points_per_unit" in body["errors"]
    assert "points" in assert_problem(api_a.patch("/api/v1/programs/kudos", {"points": None}), 422)["errors"]
    assert "slug" in assert_problem(api_a.patch("/api/v1/programs/kudos", {"slug": "other"}), 422)["errors"]
    with tenant_context(tenant_a):
        program = Program.objects.get()
    assert (program.slug, program.points_per_unit, program.points_currency) == ("kudos", 100, "USD")
    reader = make_api_client(tenant_a, scopes=["read"])
    assert_problem(reader.post("/api/v1/programs", {"slug": "nope", "name": "No"}), 403)
    assert_problem(reader.patch("/api/v1/programs/kudos", {"name": "No"}), 403)


def test_another_tenants_program_cannot_be_changed(tenant_a, api_a, api_b, make_api_client):
    assert api_a.post("/api/v1/programs", {"slug": "alpha-only", "name": "A"}).status_code == 201
    assert_problem(api_b.patch("/api/v1/programs/alpha-only", {"name": "Mine"}), 404, "not_found")
    assert_problem(make_api_client(tenant_a.sandbox).patch("/api/v1/programs/alpha-only", {"name": "S"}), 404)
    assert api_a.get("/api/v1/programs/alpha-only").json()["name"] == "A"


def test_claim_settings_are_set_and_checked_through_the_api(api_a):
    created = api_a.post(
        "/api/v1/programs",
        {"slug": "links", "name": "Links", "claim_days": 30, "reminders": {"after_days": [7, 3, 3]},
         "on_expiry": "keep", "verification": "email"},
    )  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["claim_days"], body["on_expiry"], body["verification"]) == (30, "keep", "email")
    assert body["reminders"] == {"after_days": [3, 7]}

    bad = api_a.patch(
        "/api/v1/programs/links",
        {
            "claim_days": 0,
            "reminders": {"after_days": ["3"], "weekly": [1]},
            "on_expiry": "burn",
            "verification": "fax",
        },
    )
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"claim_days", "reminders", "on_expiry", "verification"}
    assert api_a.get("/api/v1/programs/links").json()["claim_days"] == 30  # nothing changed

    changed = api_a.patch("/api/v1/programs/links", {"claim_days": None, "reminders": {}})
    assert changed.status_code == 200 and changed.json()["claim_days"] is None and changed.json()["reminders"] == {}
