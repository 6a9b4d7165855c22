"""The operator's admin for the catalogue (public schema) applies the same product rules as the services."""

from __future__ import annotations

from django.contrib import admin

from accounts.models import User
from catalog.admin import ProductAdminForm
from catalog.models import Brand, FxRate, Product, ShippingMethod, Supplier


def test_every_catalogue_model_is_in_the_admin():
    for model in (Supplier, Brand, Product, ShippingMethod, FxRate):
        assert admin.site.is_registered(model)


def form_data(catalog, **overrides) -> dict:
    data = {
        "brand": catalog.acorn.pk,
        "name": "Admin choice",
        "description": "",
        "type": "choice",
        "currency": "USD",
        "countries": "US",
        "denomination_type": "fixed",
        "denomination_values": "20,10",
        "denomination_min": "",
        "denomination_max": "",
        "is_orderable": "on",
        "supplier": catalog.acorn_usd.supplier_id,
        "cost_discount_percent": "0",
        "choice_options": [str(catalog.acorn_usd.pk)],
        "barcode_format": "",
    }
    data.update(overrides)
    return data


def test_admin_product_form_applies_the_product_rules(catalog):
    form = ProductAdminForm(data=form_data(catalog, choice_options=[str(catalog.acorn_gbp.pk)]))
    assert not form.is_valid() and "is in GBP, not USD" in str(form.errors["choice_options"])
    form = ProductAdminForm(data=form_data(catalog, denomination_values="10,20.005"))
    assert not form.is_valid() and "at most 2 decimal places" in str(form.errors)
    form = ProductAdminForm(data=form_data(catalog, denomination_type="range", denomination_values=""))
    assert not form.is_valid() and "denomination_min" in form.errors
    form = ProductAdminForm(data=form_data(catalog))
    assert form.is_valid(), form.errors
    product = form.save()
    assert [str(v) for v in product.denomination_values] == ["10", "20"]
    assert list(product.choice_options.all()) == [catalog.acorn_usd]


def test_admin_pages_render(catalog, client):
    client.force_login(User.objects.create_superuser(email="operator@example.com", password="operator-password-1"))
    for model in ("supplier", "brand", "product", "shippingmethod", "fxrate"):
        assert client.get(f"/admin/catalog/{model}/").status_code == 200
        assert client.get(f"/admin/catalog/{model}/add/").status_code == 200
    assert client.get(f"/admin/catalog/product/{catalog.choice_usd.pk}/change/").status_code == 200
