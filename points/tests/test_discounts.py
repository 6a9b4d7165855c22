"""A discount voucher priced in points: a person spends points on it through the API, the merchant reports its
use, and both ledgers (funds, points) still balance (books_balance)."""

from __future__ import annotations

from datetime import date

from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from fulfillment.services import reward_fulfil


def test_a_points_priced_discount_is_redeemed_on_the_api_and_reported_used(
    tenant_a, api_a, kudos, ana, make_partner_client
):
    product = product_create(
        brand=brand_upsert(slug="kedai-teh", name="Kedai Teh"), name="Kedai Teh 15% off", type="discount",
        currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="15", valid_until=date(2027, 6, 30),
    )  # fmt: skip
    awarded = api_a.post("/api/v1/points/awards", {"person_external_id": "E-1", "program": "kudos", "points": 1500})
    assert awarded.status_code == 201, awarded.content
    redeemed = api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "sku": product.sku, "amount": "10.00", "currency": "USD", "delivery_method": "api",
    })  # fmt: skip
    assert redeemed.status_code == 201, redeemed.content
    [reward] = redeemed.json()["rewards"]
    assert (
        api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]["balance"] == 500
    )  # 10.00 USD at 100 points each
    with tenant_context(tenant_a):
        reward_fulfil(reward_id=reward["id"])
    code = api_a.post(f"/api/v1/rewards/{reward['id']}/reveal", {}).json()["code"]
    merchant = make_partner_client(tenant_a, name="Kedai Teh", scope="discounts:report")
    used = merchant.post("/api/v1/discounts/redemptions", {"code": code})
    assert used.status_code == 201, used.content
    assert api_a.get(f"/api/v1/rewards/{reward['id']}").json()["status"] == "redeemed"


def test_a_zero_cost_discount_is_not_sold_for_points_and_the_refusal_changes_nothing(api_a, kudos, ana):
    product = product_create(
        brand=brand_upsert(slug="kedai-teh-free", name="Kedai Teh"), name="Kedai Teh 10% off", type="discount",
        currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="10", zero_cost=True,
    )  # fmt: skip
    assert api_a.post("/api/v1/points/awards", {"person_external_id": "E-1", "program": "kudos",
                                                "points": 300}).status_code == 201  # fmt: skip
    refused = api_a.post(f"/api/v1/people/{ana.id}/points/redemptions", {
        "program": "kudos", "sku": product.sku, "amount": "10.00", "currency": "USD", "delivery_method": "api",
    })  # fmt: skip
    assert refused.status_code == 422 and refused.json()["code"] == "product_unavailable"
    assert api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]["balance"] == 300
    assert api_a.get("/api/v1/orders").json()["results"] == []
