"""Points on the funds ledger: award holds money, redemption spends it into an order, expiry and reversal
release it; idempotent awards; a person's balance and history over the API; 422 insufficient_points."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from core.errors import ApplicationError
from orders.models import Order
from points.models import PointsAward
from points.services import points_award, points_award_expire
from testsupport.funds import balances
from testsupport.problems import assert_problem

from .conftest import ACTOR


def award(tenant, program, person, points, external_id=None, **kwargs):
    with tenant_context(tenant):
        return points_award(program=program, person=person, points=points, external_id=external_id, actor=ACTOR,
                            **kwargs)[0]  # fmt: skip


def test_award_holds_money_and_is_idempotent(tenant_a, api_a, kudos, ana):
    body = {"person_external_id": "E-1", "program": "kudos", "points": 1250, "reason": "Launch", "external_id": "k-1"}
    first = api_a.post("/api/v1/points/awards", body)
    assert first.status_code == 201, first.content
    assert (first.json()["points"], first.json()["balance"]) == (1250, 1250)
    again = api_a.post("/api/v1/points/awards", body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and again.json()["balance"] == 1250
    with tenant_context(tenant_a):
        assert balances("USD") == (Decimal("1000.00"), Decimal("12.50"), Decimal("987.50"))  # posted, held, available
    points = api_a.get(f"/api/v1/people/{ana.id}/points").json()
    assert points["programs"] == [{"program": "kudos", "name": "Kudos", "balance": 1250,
                                   "value": {"amount": "12.50", "currency": "USD"}, "expiring": []}]  # fmt: skip


def test_award_refusals_change_nothing(tenant_a, api_a, kudos, ana):
    from programs.services import program_create

    with tenant_context(tenant_a):
        program_create(slug="plain", name="No points")
    for body, status, code in (
        ({"person_external_id": "E-1", "program": "kudos", "points": 0}, 422, "validation_error"),
        ({"person_external_id": "E-1", "program": "kudos", "points": "10"}, 422, "validation_error"),
        ({"person_external_id": "E-1", "program": "kudos", "points": 1.5}, 422, "validation_error"),
        ({"person_external_id": "nobody", "program": "kudos", "points": 5}, 422, "unknown_person"),
        ({"person_external_id": "E-1", "program": "plain", "points": 5}, 422, "validation_error"),
        # 100,001 USD of points against 1,000 USD of funds: the hold is refused and no points exist.
        ({"person_external_id": "E-1", "program": "kudos", "points": 10_000_100}, 402, "insufficient_funds"),
    ):
        assert_problem(api_a.post("/api/v1/points/awards", body), status, code, what=str(body))
    with tenant_context(tenant_a):
        assert not PointsAward.objects.exists()
        assert balances("USD")[2] == Decimal("1000.00")


def test_redeem_spends_awards_first_to_expire_first_into_an_order(tenant_a, api_a, kudos, ana, shop):
    later = award(tenant_a, kudos, ana, 2000, "late")
    with tenant_context(tenant_a):
        PointsAward.objects.filter(pk=later.pk).update(expires_at=timezone.now() + timedelta(days=300))
    sooner = award(tenant_a, kudos, ana, 1000, "soon")
    with tenant_context(tenant_a):
        PointsAward.objects.filter(pk=sooner.pk).update(expires_at=timezone.now() + timedelta(days=10))
        assert balances("USD")[1] == Decimal("30.00")
    response = api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "sku": shop.coffee_usd.sku, "amount": "25.00", "currency": "USD",
    })  # fmt: skip
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["total"]["amount"] == "25.00" and order["rewards"][0]["delivery_method"] == "email"
    with tenant_context(tenant_a):
        assert dict(PointsAward.objects.values_list("external_id", "remaining")) == {"soon": 0, "late": 500}
        # 5.00 still held for the 500 points left, 25.00 for the reward; nothing left the tenant's cash.
        assert balances("USD") == (Decimal("1000.00"), Decimal("30.00"), Decimal("970.00"))
        assert Order.objects.get(pk=order["id"]).program.slug == "kudos"
    history = api_a.get(f"/api/v1/people/{ana.id}/points/history").json()["results"]
    assert [(row["kind"], row["points"]) for row in history] == [("redeem", -2500), ("award", 1000), ("award", 2000)]
    assert history[0]["reference"] == f"order:{order['id']}"
    body = assert_problem(api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "product_id": str(shop.coffee_usd.id), "amount": "10.00", "currency": "USD",
    }), 422, "insufficient_points")  # fmt: skip
    assert "1000" in body["detail"] and "500" in body["detail"]
    with tenant_context(tenant_a):
        assert Order.objects.count() == 1 and balances("USD")[2] == Decimal("970.00")


def test_expiry_and_reversal_release_the_money(tenant_a, api_a, kudos, ana):
    due = award(tenant_a, kudos, ana, 700, "due")
    kept = award(tenant_a, kudos, ana, 300, "kept")
    with tenant_context(tenant_a):
        PointsAward.objects.filter(pk=due.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        assert points_award_expire(award_id=due.pk) == 700
        assert points_award_expire(award_id=due.pk) == 0  # a repeated sweep changes nothing
        assert points_award_expire(award_id=kept.pk) == 0  # not due
        assert balances("USD")[1:] == (Decimal("3.00"), Decimal("997.00"))
    response = api_a.post(f"/api/v1/points/awards/{kept.id}/reverse", {"reason": "Awarded twice"})
    assert response.status_code == 200 and response.json()["points_reversed"] == 300
    assert response.json()["balance"] == 0
    assert api_a.post(f"/api/v1/points/awards/{kept.id}/reverse", {}).json()["points_reversed"] == 0
    with tenant_context(tenant_a):
        assert balances("USD") == (Decimal("1000.00"), Decimal("0.00"), Decimal("1000.00"))


def test_another_tenants_people_and_awards_are_404(tenant_a, tenant_b, api_a, api_b, kudos, ana):
    given = award(tenant_a, kudos, ana, 100, "a-1")
    assert_problem(api_b.get(f"/api/v1/people/{ana.id}/points"), 404)
    assert_problem(api_b.post(f"/api/v1/points/awards/{given.id}/reverse", {}), 404)
    assert_problem(api_b.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "product_id": "x", "amount": "1", "currency": "USD"}), 404)  # fmt: skip
    assert api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]["balance"] == 100


def test_points_value_rounds_up_to_a_whole_point(tenant_a, kudos, ana, shop):
    """A 10-points-per-dollar program charged 12.345 would need 123.45 points: the person pays 124."""
    from points.redemptions import points_price
    from programs.models import Program

    program = Program(points_per_unit=10, points_currency="USD")
    assert points_price(program=program, total=Decimal("12.345")) == 124
    assert points_price(program=program, total=Decimal("12.30")) == 123
    with pytest.raises(ApplicationError):
        award(tenant_a, kudos, ana, True)


def test_expiry_sweep_notifies_then_expires(tenant_a, kudos, ana, mailoutbox, django_capture_on_commit_callbacks):
    from points.expiry import points_expire_due, points_expiry_notify
    from webhooks.models import Event

    soon = award(tenant_a, kudos, ana, 400, "soon")
    award(tenant_a, kudos, ana, 100, "far")
    with tenant_context(tenant_a):
        PointsAward.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(days=3))
        with django_capture_on_commit_callbacks(execute=True):
            assert points_expiry_notify() == 1
            assert points_expiry_notify() == 0  # once per award
        [notice] = mailoutbox
        assert notice.to == [ana.email] and "400 Kudos expire on" in notice.subject
        assert Event.objects.filter(type="points.expiring").count() == 1
        PointsAward.objects.filter(pk=soon.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert points_expire_due() == 400
        assert points_expire_due() == 0
        assert Event.objects.filter(type="points.expired").count() == 1
        assert balances("USD")[1] == Decimal("1.00")


def test_points_report_per_program(tenant_a, api_a, kudos, ana, shop, django_assert_max_num_queries):
    award(tenant_a, kudos, ana, 3000, "r1")
    given = award(tenant_a, kudos, ana, 500, "r2")
    api_a.post(f"/api/v1/points/awards/{given.id}/reverse", {})
    api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "product_id": str(shop.coffee_usd.id), "amount": "10.00", "currency": "USD"})  # fmt: skip
    with django_assert_max_num_queries(8):
        report = api_a.get("/api/v1/reports/points").json()["results"]
    assert report == [{"program": "kudos", "name": "Kudos", "currency": "USD", "issued": 3500, "redeemed": 1000,
                       "expired": 0, "reversed": 500, "outstanding": 2000, "liability": "20.00"}]  # fmt: skip
    assert api_a.get("/api/v1/reports/points", {"from": "2099-01-01T00:00:00Z"}).json()["results"][0]["issued"] == 0
    assert_problem(api_a.get("/api/v1/reports/points", {"from": "yesterday"}), 422)


def test_a_redemption_is_not_held_for_approval_its_points_were_the_approved_spend(tenant_a, api_a, kudos, ana, shop):
    from tenants.policies import approval_policy_set

    award(tenant_a, kudos, ana, 3000, "big")
    approval_policy_set(tenant=tenant_a, policy={"thresholds": {"USD": "10.00"}}, actor=None)
    response = api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "sku": shop.coffee_usd.sku, "amount": "25.00", "currency": "USD",
    })  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending" and response.json()["approval"] is None


def test_a_failed_redemption_gives_the_points_back(tenant_a, api_a, kudos, ana, shop):
    from orders.lifecycle import reward_fail
    from orders.models import Reward

    award(tenant_a, kudos, ana, 3000, "f1")
    body = {"program": "kudos", "product_id": str(shop.coffee_usd.id), "amount": "25.00", "currency": "USD"}
    order = api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", body).json()
    with tenant_context(tenant_a):
        reward = Reward.objects.select_related("hold", "order").get(order_id=order["id"])
        reward_fail(reward=reward, reason="supplier refused")
        reward_fail(reward=Reward.objects.select_related("hold", "order").get(pk=reward.pk), reason="again")
        assert balances("USD")[1] == Decimal("30.00")  # the points' value held again, the reward's released
    assert api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]["balance"] == 3000
