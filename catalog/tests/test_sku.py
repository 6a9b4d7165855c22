"""Stable product references: every product has a SKU, accepted wherever a product_id is (API orders, bulk
files), shown in the catalogue, its CSV and the bulk template."""

import pytest

from catalog.services import product_create
from core.errors import ApplicationError
from testsupport.orders import digital_order
from testsupport.problems import assert_problem


def test_products_get_distinct_skus_and_a_taken_one_is_refused(shop):
    assert shop.coffee_usd.sku.endswith("-us-usd") and shop.books_gbp.sku.endswith("-gb-gbp")
    twin = product_create(
        brand=shop.coffee_usd.brand, name="Lumen Coffee again", currency="USD", countries=["US"],
        denomination_type="fixed", denomination_values=["10"],
    )  # fmt: skip
    assert twin.sku == f"{shop.coffee_usd.sku}-2"
    with pytest.raises(ApplicationError) as refused:
        product_create(
            brand=shop.coffee_usd.brand, name="Clash", currency="USD", countries=["US"], denomination_type="fixed",
            denomination_values=["10"], sku=shop.coffee_usd.sku.upper(),
        )  # fmt: skip
    assert "sku" in refused.value.errors


def test_an_order_names_its_product_by_sku(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "25.00")
    del body["rewards"][0]["product_id"]
    body["rewards"][0]["sku"] = shop.coffee_usd.sku.upper()
    response = api_a.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    assert response.json()["rewards"][0]["product"]["id"] == str(shop.coffee_usd.id)
    body["rewards"][0]["sku"] = "no-such-sku"
    assert_problem(api_a.post("/api/v1/orders", body), 422, "product_unavailable")
    del body["rewards"][0]["sku"]
    assert_problem(api_a.post("/api/v1/orders", body), 422, "validation_error")
    products = api_a.get("/api/v1/products", {"q": shop.coffee_usd.sku}).json()["results"]
    assert [p["sku"] for p in products] == [shop.coffee_usd.sku]
