"""Discount and points figures in the reports: discounts issued and redeemed (as merchants reported them) per
program and per product, points issued / redeemed / expired / outstanding per program, over the API (JSON and
CSV) and on the portal's Reports page with its downloads; another tenant sees none of it."""

from __future__ import annotations

from datetime import date

import pytest
from django_tenants.utils import tenant_context

from audit.actors import Actor
from catalog.services import brand_upsert, product_create
from fulfillment.services import reward_fulfil
from funds.selectors import ledger_invariant_violations
from people.services import person_create
from points.selectors import points_invariant_violations
from programs.services import program_create
from testsupport.orders import digital_order

KUDOS = {"name": "Kudos", "points_per_unit": 100, "currency": "USD", "expire_after_days": 365, "self_redeem": True}


@pytest.fixture
def discounts(db):
    def make(slug: str, name: str, percent: str):
        return product_create(
            brand=brand_upsert(slug=slug, name=name), name=f"{name} {percent}% off", type="discount", currency="USD",
            countries=["US"], denomination_type="fixed", denomination_values=["10"], discount_kind="percent",
            discount_value=percent, valid_until=date(2027, 12, 31),
        )  # fmt: skip

    return make("kedai-kopi-r", "Kedai Kopi", "20"), make("kedai-teh-r", "Kedai Teh", "10")


def _row(*cells: str) -> str:
    return ",".join(f'"{cell}"' for cell in cells)


def _issue(api, tenant, product, *, program=None) -> tuple[str, str]:
    body = digital_order(product, "10.00") | ({"program": program} if program else {})
    body["rewards"][0]["delivery_method"] = "api"
    created = api.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
    return reward_id, api.post(f"/api/v1/rewards/{reward_id}/reveal").json()["code"]


def test_discounts_and_points_in_the_reports_api_and_page(
    api_a, api_b, funded_a, discounts, make_partner_client, make_api_client, signed_in
):
    kopi, teh = discounts
    with tenant_context(funded_a):
        program_create(slug="kudos", name="Kudos", points=KUDOS)
        ana = person_create(actor=Actor.cli(), fields={"external_id": "E-1", "name": "Ana", "email": "ana@a.test"})
    codes = [_issue(api_a, funded_a, kopi, program="kudos")[1] for _ in range(3)]
    _issue(api_a, funded_a, teh)
    merchant = make_partner_client(funded_a, name="Kedai Kopi", scope="discounts:report")
    for code, amount in zip(codes[:2], ("84.50", "15.50"), strict=True):
        used = merchant.post("/api/v1/discounts/redemptions", {"code": code, "order_amount": amount,
                                                               "order_currency": "MYR"})  # fmt: skip
        assert used.status_code == 201, used.content
    assert api_a.post("/api/v1/points/awards", {"person_id": str(ana.pk), "program": "kudos", "points": 1500,
                                                "reason": "<b>Launch</b>"}).status_code == 201  # fmt: skip
    spent = api_a.post(f"/api/v1/people/{ana.pk}/points/redemptions", {
        "program": "kudos", "sku": kopi.sku, "amount": "10.00", "currency": "USD", "delivery_method": "api",
    })  # fmt: skip
    assert spent.status_code == 201, spent.content

    reader = make_api_client(funded_a, scopes=["read"])
    by_program = reader.get("/api/v1/reports/discounts").json()
    assert [(r["label"], r["issued"], r["redeemed"], r["sales"]) for r in by_program["rows"]] == [
        ("Kudos", 3, 2, [{"currency": "MYR", "amount": "100.00"}]), ("No program", 1, 0, [])]  # fmt: skip
    assert by_program["totals"] == {"issued": 4, "redeemed": 2}  # the one bought with points is not delivered yet
    by_product = reader.get("/api/v1/reports/discounts", {"group_by": "product"}).json()
    assert [(r["key"], r["issued"], r["redeemed"]) for r in by_product["rows"]] == [
        (str(kopi.id), 3, 2), (str(teh.id), 1, 0)]  # fmt: skip
    csv_file = reader.get("/api/v1/reports/discounts", {"group_by": "product", "format": "csv"})
    assert _row("Kedai Kopi 20% off", "3", "2", "100.00 MYR") in csv_file.content.decode()
    assert reader.get("/api/v1/reports/discounts", {"group_by": "day"}).status_code == 400
    assert api_b.get("/api/v1/reports/discounts").json()["rows"] == []

    today = date.today().isoformat()
    points = reader.get("/api/v1/reports/points", {"from": today, "to": today}).json()
    assert (points["from"], points["to"]) == (today, today)
    assert [(r["program"], r["issued"], r["redeemed"], r["expired"], r["outstanding"], r["liability"])
            for r in points["results"]] == [("kudos", 1500, 1000, 0, 500, "5.00")]  # fmt: skip
    assert reader.get("/api/v1/reports/points", {"from": "2099-01-01"}).json()["results"][0]["issued"] == 0
    points_csv = reader.get("/api/v1/reports/points", {"format": "csv"})
    assert _row("kudos", "Kudos", "USD", "1500", "1000", "0", "0", "500", "5.00") in points_csv.content.decode()
    assert api_b.get("/api/v1/reports/points").json()["results"] == []

    client, _ = signed_in("finance")
    page = client.get("/reports/", {"group_by": "product"}).content.decode()
    assert "Discounts by Product" in page and 'data-testid="discounts-issued"><strong>4' in page
    assert 'data-testid="discounts-redeemed"><strong>2' in page and "100.00 MYR" in page
    assert 'data-testid="report-points"' in page
    download = client.get("/reports/discounts.csv", {"group_by": "product"})
    assert download.status_code == 200 and _row("Kedai Teh 10% off", "1", "0", "") in download.content.decode()
    points_file = client.get("/reports/points.csv").content.decode()
    assert _row("kudos", "Kudos", "USD", "1500", "1000", "0", "0", "500", "5.00") in points_file
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == [] and points_invariant_violations() == []
