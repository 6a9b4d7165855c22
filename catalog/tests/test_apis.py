"""GET /api/v1/products, /products/{id}, /shipping-methods, /fx-rates as an integrator sees them."""

from __future__ import annotations

import uuid

import pytest
from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, fx_rate_create, product_create, product_set_orderable
from programs.services import catalog_rule_set, program_create
from testsupport.problems import assert_problem

PRODUCT_FIELDS = {"id", "sku", "brand", "name", "type", "currency", "countries", "denominations", "is_orderable",
                  "description", "terms", "redemption_instructions", "choice_options", "discount",
                  "zero_cost"}  # fmt: skip


def by_name(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    return {product["name"]: product for product in response.json()["results"]}


def test_product_list_shape(catalog, api_a):
    products = by_name(api_a.get("/api/v1/products"))
    assert len(products) == 6
    usd = products["Acorn Books US"]
    assert set(usd) == PRODUCT_FIELDS
    assert usd == {
        "id": str(catalog.acorn_usd.id),
        "sku": "acorn-books-us-usd",
        "brand": {"name": "Acorn Books", "slug": "acorn-books", "logo_url": "https://img.example/acorn.png"},
        "name": "Acorn Books US",
        "type": "digital",
        "currency": "USD",
        "countries": ["US"],
        "denominations": {"type": "fixed", "values": ["10.00", "25.00", "50.00"]},
        "is_orderable": True,
        "description": "Books.",
        "terms": "No cash value.",
        "redemption_instructions": "Enter the code.",
        "choice_options": [],
        "discount": None,
        "zero_cost": False,
    }
    assert products["Acorn Books UK"]["denominations"] == {"type": "range", "min": "5.00", "max": "500.00"}
    assert products["Bluebird Day Spa"]["denominations"] == {"type": "range", "min": "1000", "max": "50000"}
    assert products["Bluebird Gift Box"]["countries"] == ["DE", "FR"]
    assert sorted(products["Reader's Choice"]["choice_options"]) == sorted(
        [str(catalog.acorn_usd.id), str(catalog.lantern_usd.id)]
    )


def test_product_list_filters(catalog, api_a):
    assert set(by_name(api_a.get("/api/v1/products", {"country": "us", "type": "digital"}))) == {
        "Acorn Books US",
        "Lantern Coffee Card",
    }
    assert set(by_name(api_a.get("/api/v1/products", {"currency": "JPY"}))) == {"Bluebird Day Spa"}
    assert set(by_name(api_a.get("/api/v1/products", {"q": "Bluebird", "type": "physical"}))) == {"Bluebird Gift Box"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"country": "USA"}, "country"), ({"currency": "US"}, "currency"), ({"type": "voucher"}, "type"),
     ({"program": "not a slug!"}, "program")],
)  # fmt: skip
def test_product_list_bad_filters_are_problems(catalog, api_a, params, field):
    body = assert_problem(api_a.get("/api/v1/products", params), 422, "validation_error")
    assert field in body["errors"]


def test_product_list_by_program(catalog, api_a, tenant_a):
    with tenant_context(tenant_a):
        program_create(slug="coffee", name="Coffee", allowed_product_ids=[catalog.lantern_usd.id])
        program_create(slug="retired", name="Retired", is_active=False)
    assert set(by_name(api_a.get("/api/v1/products", {"program": "coffee"}))) == {"Lantern Coffee Card"}
    body = assert_problem(api_a.get("/api/v1/products", {"program": "retired"}), 422, "validation_error")
    assert body["errors"]["program"] == ["The program 'retired' is inactive."]
    body = assert_problem(api_a.get("/api/v1/products", {"program": "nope"}), 422, "validation_error")
    assert "program" in body["errors"]


def test_product_list_follows_curation_per_tenant(catalog, api_a, api_b, tenant_a, make_api_client):
    with tenant_context(tenant_a):
        catalog_rule_set(mode="allow", brand_slugs=["bluebird-spa"])
        catalog_rule_set(mode="deny", product_ids=[catalog.bluebird_jpy.id])
    assert set(by_name(api_a.get("/api/v1/products"))) == {"Bluebird Gift Box"}
    assert len(by_name(api_b.get("/api/v1/products"))) == 6
    assert len(by_name(make_api_client(tenant_a.sandbox).get("/api/v1/products"))) == 6  # the twin has its own rules
    assert_problem(api_a.get(f"/api/v1/products/{catalog.bluebird_jpy.id}"), 404, "not_found")
    assert api_b.get(f"/api/v1/products/{catalog.bluebird_jpy.id}").status_code == 200


def test_product_detail(catalog, api_a):
    product_set_orderable(product=catalog.acorn_gbp, is_orderable=False)
    response = api_a.get(f"/api/v1/products/{catalog.acorn_gbp.id}")
    assert response.status_code == 200
    assert response.json()["is_orderable"] is False
    assert set(response.json()) == PRODUCT_FIELDS
    assert_problem(api_a.get(f"/api/v1/products/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(api_a.get("/api/v1/products/not-a-uuid"), 404, "not_found")


def test_product_list_needs_a_credential(catalog, client):
    assert_problem(client.get("/api/v1/products"), 401, "unauthenticated")


def test_product_list_pages_with_a_cursor_under_a_query_budget(catalog, api_a, django_assert_max_num_queries):
    brand = brand_upsert(slug="many", name="Many Things")
    for number in range(25):
        product_create(brand=brand, name=f"Thing {number:02}", currency="USD", countries=["US"],
                       denomination_type="fixed", denomination_values=["10"])  # fmt: skip
    for number in range(5):
        product_create(brand=brand, name=f"Pick {number}", type="choice", currency="USD", countries=["US"],
                       denomination_type="fixed", denomination_values=["10"],
                       choice_options=[catalog.acorn_usd, catalog.lantern_usd])  # fmt: skip
    seen: list[str] = []
    url, params = "/api/v1/products", {"limit": 7}
    while url:
        with django_assert_max_num_queries(10):
            response = api_a.get(url, params)
        assert response.status_code == 200
        body = response.json()
        seen += [product["id"] for product in body["results"]]
        url, params = body["next"], None
    assert len(seen) == len(set(seen)) == 36
    with django_assert_max_num_queries(10):
        response = api_a.get("/api/v1/products", {"limit": 200})
    assert len(response.json()["results"]) == 36
    choices = [p for p in response.json()["results"] if p["type"] == "choice"]
    assert all(len(p["choice_options"]) == 2 for p in choices)


def test_shipping_methods(catalog, api_a, django_assert_max_num_queries):
    with django_assert_max_num_queries(7):
        response = api_a.get("/api/v1/shipping-methods", {"country": "fr"})
    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "id": str(catalog.ground_eu.id),
            "name": "EU Ground",
            "carrier": "PostaEuropa",
            "countries": ["DE", "FR"],
            "price": "4.90",
            "currency": "EUR",
            "estimated_days": 5,
        }
    ]
    assert len(api_a.get("/api/v1/shipping-methods").json()["results"]) == 2
    assert_problem(api_a.get("/api/v1/shipping-methods", {"country": "France"}), 422, "validation_error")


def test_fx_rates(db, api_a, django_assert_max_num_queries):
    fx_rate_create(base="USD", quote="EUR", rate="0.9200000000")
    fx_rate_create(base="USD", quote="JPY", rate="151.3")
    fx_rate_create(base="GBP", quote="USD", rate="1.27")
    with django_assert_max_num_queries(7):
        response = api_a.get("/api/v1/fx-rates", {"base": "usd"})
    assert response.status_code == 200
    rates = response.json()["results"]
    assert [(r["base"], r["quote"], r["rate"]) for r in rates] == [("USD", "EUR", "0.92"), ("USD", "JPY", "151.3")]
    assert set(rates[0]) == {"base", "quote", "rate", "as_of"}
    assert len(api_a.get("/api/v1/fx-rates").json()["results"]) == 3
    assert_problem(api_a.get("/api/v1/fx-rates", {"base": "DOLLAR"}), 422, "validation_error")


def test_openapi_schema_documents_the_catalogue(db, client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/products", "/api/v1/products/{product_id}", "/api/v1/shipping-methods",
                 "/api/v1/fx-rates", "/api/v1/programs", "/api/v1/programs/{slug}"):  # fmt: skip
        assert "examples" in paths[path]["get"]["responses"]["200"]["content"]["application/json"], path
    parameters = {parameter["name"] for parameter in paths["/api/v1/products"]["get"]["parameters"]}
    assert {"country", "currency", "type", "q", "program", "cursor"} <= parameters
