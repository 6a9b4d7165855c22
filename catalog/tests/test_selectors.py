"""The catalogue as a tenant sees it: filters, curation, programs, countries, denominations, FX, shipping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from catalog.selectors import (
    fx_rate_get,
    fx_rate_list,
    product_choice_options,
    product_get_for_tenant,
    product_get_orderable,
    product_list_for_tenant,
    product_validate_amount,
    shipping_method_get,
    shipping_method_list,
)
from catalog.services import fx_rate_create, product_set_orderable, shipping_method_upsert, supplier_upsert
from core.errors import ApplicationError, NotFoundError
from programs.services import catalog_rule_set, program_create


def names(queryset) -> set[str]:
    return {product.name for product in queryset}


def unavailable(**kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        product_get_orderable(**kwargs)
    assert info.value.code == "product_unavailable" and info.value.status == 422
    assert info.value.errors["product_id"]
    return info.value


# --- filters -----------------------------------------------------------------------------------------------


def test_filters(catalog, tenant_a):
    with tenant_context(tenant_a):
        assert product_list_for_tenant().count() == 6
        assert names(product_list_for_tenant(country="us")) == {
            "Acorn Books US",
            "Lantern Coffee Card",
            "Reader's Choice",
        }
        assert names(product_list_for_tenant(country="CA")) == {"Lantern Coffee Card"}
        assert names(product_list_for_tenant(currency="eur")) == {"Bluebird Gift Box"}
        assert names(product_list_for_tenant(type="experience")) == {"Bluebird Day Spa"}
        assert names(product_list_for_tenant(q="bluebird")) == {"Bluebird Gift Box", "Bluebird Day Spa"}  # brand name
        assert names(product_list_for_tenant(q="coffee card")) == {"Lantern Coffee Card"}
        assert names(product_list_for_tenant(country="US", currency="USD", type="choice")) == {"Reader's Choice"}
        assert product_list_for_tenant(country="ZZ").count() == 0


def test_not_orderable_products_are_listed_but_cannot_be_ordered(catalog, tenant_a):
    product_set_orderable(product=catalog.acorn_gbp, is_orderable=False)
    with tenant_context(tenant_a):
        listed = {p.id: p for p in product_list_for_tenant()}
        assert listed[catalog.acorn_gbp.id].can_be_ordered is False
        assert product_get_for_tenant(product_id=catalog.acorn_gbp.id).is_orderable is False
        assert "cannot be ordered" in unavailable(product_id=catalog.acorn_gbp.id).detail


def test_inactive_supplier_makes_products_unorderable(catalog, tenant_a):
    supplier_upsert(code="sandbox", name="Sandbox supplier", kind="sandbox", is_active=False)
    with tenant_context(tenant_a):
        unavailable(product_id=catalog.acorn_usd.id)
        assert product_get_for_tenant(product_id=catalog.acorn_usd.id).can_be_ordered is False


def test_unknown_products(catalog, tenant_a):
    with tenant_context(tenant_a):
        for bad in (uuid.uuid4(), "not-a-uuid", None):
            with pytest.raises(NotFoundError):
                product_get_for_tenant(product_id=bad)
            unavailable(product_id=bad)


# --- tenant curation ----------------------------------------------------------------------------------------


def test_deny_rule_hides_products_and_brands(catalog, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        catalog_rule_set(mode="deny", product_ids=[catalog.acorn_usd.id], brand_slugs=["bluebird-spa"])
        assert names(product_list_for_tenant()) == {"Acorn Books UK", "Lantern Coffee Card", "Reader's Choice"}
        with pytest.raises(NotFoundError):
            product_get_for_tenant(product_id=catalog.acorn_usd.id)
        assert "not available to this account" in unavailable(product_id=catalog.bluebird_eur.id).detail
        product_get_orderable(product_id=catalog.lantern_usd.id)
    with tenant_context(tenant_b):  # rules are per tenant
        assert product_list_for_tenant().count() == 6
        product_get_orderable(product_id=catalog.acorn_usd.id)
    with tenant_context(tenant_a.sandbox):  # ... and per twin
        assert product_list_for_tenant().count() == 6


def test_allow_rule_limits_and_deny_wins(catalog, tenant_a):
    with tenant_context(tenant_a):
        catalog_rule_set(mode="allow", brand_slugs=["acorn-books"], product_ids=[catalog.lantern_usd.id])
        assert names(product_list_for_tenant()) == {"Acorn Books US", "Acorn Books UK", "Reader's Choice",
                                                    "Lantern Coffee Card"}  # fmt: skip
        unavailable(product_id=catalog.bluebird_jpy.id)
        catalog_rule_set(mode="deny", product_ids=[catalog.acorn_gbp.id, catalog.lantern_usd.id])
        assert names(product_list_for_tenant()) == {"Acorn Books US", "Reader's Choice"}
        unavailable(product_id=catalog.lantern_usd.id)
        product_get_orderable(product_id=catalog.acorn_usd.id)
        # An empty rule is removed: everything not denied is back.
        assert catalog_rule_set(mode="allow") is None
        assert names(product_list_for_tenant()) == {"Acorn Books US", "Reader's Choice", "Bluebird Gift Box",
                                                    "Bluebird Day Spa"}  # fmt: skip


def test_choice_options_follow_deny_rules_not_allow_rules(catalog, tenant_a):
    with tenant_context(tenant_a):
        catalog_rule_set(mode="allow", product_ids=[catalog.choice_usd.id])
        assert names(product_choice_options(product=catalog.choice_usd)) == {"Acorn Books US", "Lantern Coffee Card"}
        catalog_rule_set(mode="deny", brand_slugs=["lantern-coffee"])
        assert names(product_choice_options(product=catalog.choice_usd)) == {"Acorn Books US"}
        listed = product_list_for_tenant().get(pk=catalog.choice_usd.pk)
        assert [option.name for option in listed.choice_options.all()] == ["Acorn Books US"]


def test_catalog_rule_set_refuses_unknown_references(catalog, tenant_a):
    with tenant_context(tenant_a):
        with pytest.raises(ApplicationError) as info:
            catalog_rule_set(mode="deny", product_ids=[uuid.uuid4(), "junk"], brand_slugs=["no-such-brand"])
        assert set(info.value.errors) == {"product_ids", "brand_slugs"}
        with pytest.raises(ApplicationError):
            catalog_rule_set(mode="maybe", brand_slugs=["acorn-books"])
        assert product_list_for_tenant().count() == 6


# --- programs ------------------------------------------------------------------------------------------------


def test_program_limits_products(catalog, tenant_a):
    with tenant_context(tenant_a):
        books = [catalog.acorn_usd.id, str(catalog.acorn_gbp.id)]
        program = program_create(slug="books", name="Books", allowed_product_ids=books)
        everything = program_create(slug="all", name="All")
        assert names(product_list_for_tenant(program=program)) == {"Acorn Books US", "Acorn Books UK"}
        assert names(product_list_for_tenant(program=program, currency="GBP")) == {"Acorn Books UK"}
        assert product_list_for_tenant(program=everything).count() == 6
        product_get_orderable(product_id=catalog.acorn_usd.id, program=program)
        assert "not part of the program" in unavailable(product_id=catalog.lantern_usd.id, program=program).detail
        product_get_orderable(product_id=catalog.lantern_usd.id, program=everything)
        # Tenant curation still applies inside a program.
        catalog_rule_set(mode="deny", product_ids=[catalog.acorn_usd.id])
        assert names(product_list_for_tenant(program=program)) == {"Acorn Books UK"}
        unavailable(product_id=catalog.acorn_usd.id, program=program)


# --- countries ---------------------------------------------------------------------------------------------


def test_country_availability(catalog, tenant_a):
    with tenant_context(tenant_a):
        assert product_get_orderable(product_id=catalog.bluebird_eur.id, country="fr") == catalog.bluebird_eur
        product_get_orderable(product_id=catalog.bluebird_eur.id, country="DE")
        error = unavailable(product_id=catalog.bluebird_eur.id, country="US")
        assert "'US'" in error.detail and "DE, FR" in error.detail


# --- denominations ---------------------------------------------------------------------------------------


def amount_refusal(product, amount) -> str:
    with pytest.raises(ApplicationError) as info:
        product_validate_amount(product=product, amount=amount)
    assert info.value.code == "amount_not_allowed" and info.value.status == 422
    assert info.value.errors["amount"] == [info.value.detail]
    return info.value.detail


def test_fixed_denominations(catalog):
    product = catalog.acorn_usd
    for ok in (Decimal("10"), Decimal("25.00"), Decimal("50.0")):
        product_validate_amount(product=product, amount=ok)
    detail = amount_refusal(product, Decimal("20.00"))
    assert "20.00 USD is not offered" in detail and "10.00, 25.00, 50.00 USD" in detail
    assert "at most 2 decimal places" in amount_refusal(product, Decimal("10.001"))
    assert "not a positive amount" in amount_refusal(product, Decimal("-10"))
    assert "not a positive amount" in amount_refusal(product, Decimal("NaN"))


def test_range_denominations_are_inclusive(catalog):
    product = catalog.acorn_gbp
    for ok in ("5", "5.00", "123.45", "500"):
        product_validate_amount(product=product, amount=Decimal(ok))
    assert "5.00 to 500.00 GBP" in amount_refusal(product, Decimal("4.99"))
    assert "out of range" in amount_refusal(product, Decimal("500.01"))


def test_zero_decimal_currency(catalog):
    product = catalog.bluebird_jpy
    product_validate_amount(product=product, amount=Decimal("1500"))
    detail = amount_refusal(product, Decimal("1500.5"))
    assert "JPY amounts have at most 0 decimal places" in detail and "1000 to 50000 JPY" in detail


# --- FX rates ---------------------------------------------------------------------------------------------


def test_fx_rate_get_latest_effective(db, tenant_a):
    now = timezone.now()
    fx_rate_create(base="USD", quote="EUR", rate="0.90", as_of=now - timedelta(days=2))
    latest = fx_rate_create(base="USD", quote="EUR", rate="0.92", as_of=now - timedelta(hours=1))
    fx_rate_create(base="USD", quote="EUR", rate="0.99", as_of=now + timedelta(days=1))  # not effective yet
    with tenant_context(tenant_a):
        assert fx_rate_get(base="usd", quote="eur") == latest
        identity = fx_rate_get(base="GBP", quote="GBP")
        assert identity.rate == 1 and identity.pk is None
        inverse = fx_rate_get(base="EUR", quote="USD")
        assert inverse.pk is None and inverse.rate == Decimal("1.0869565217")
        assert fx_rate_get(base="USD", quote="JPY") is None
        assert [(fx.base, fx.quote, fx.rate) for fx in fx_rate_list()] == [("USD", "EUR", Decimal("0.92"))]


# --- shipping -----------------------------------------------------------------------------------------------


def test_shipping_methods(catalog, tenant_a):
    hidden = shipping_method_upsert(name="Old", carrier="Gone", countries=["US"], price="1", currency="USD",
                                    estimated_days=9, is_active=False)  # fmt: skip
    with tenant_context(tenant_a):
        assert list(shipping_method_list(country="de")) == [catalog.ground_eu]
        assert set(shipping_method_list()) == {catalog.ground_eu, catalog.express_us}
        assert shipping_method_get(shipping_method_id=str(catalog.ground_eu.id), country="fr") == catalog.ground_eu
        for method_id, country, text in ((catalog.ground_eu.id, "US", "does not deliver to 'US'"),
                                         (hidden.id, "US", "Unknown shipping method"),
                                         (uuid.uuid4(), "US", "Unknown shipping method"),
                                         ("junk", "US", "Unknown shipping method")):  # fmt: skip
            with pytest.raises(ApplicationError) as info:
                shipping_method_get(shipping_method_id=method_id, country=country)
            assert info.value.code == "validation_error" and info.value.status == 422
            assert text in info.value.errors["shipping_method_id"][0]
