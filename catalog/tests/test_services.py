"""Catalogue writes: validation of products, shipping methods and FX rates; the FX CSV loader; demo data."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from catalog.models import Brand, FxRate, Product, ProductType, ShippingMethod, Supplier
from catalog.services import (
    brand_upsert,
    fx_rate_create,
    fx_rates_load,
    product_create,
    product_update,
    shipping_method_upsert,
)
from core.errors import ApplicationError


@pytest.fixture
def brand(db) -> Brand:
    return brand_upsert(slug="oak-and-ember", name="Oak & Ember")


def make(brand: Brand, **overrides) -> Product:
    fields = dict(brand=brand, name="Oak & Ember eGift", currency="USD", countries=["US"], denomination_type="fixed",
                  denomination_values=["25"])  # fmt: skip
    fields.update(overrides)
    return product_create(**fields)


def refusal(brand: Brand, **overrides) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        make(brand, **overrides)
    assert info.value.code == "validation_error"
    assert info.value.status == 422
    return info.value


def test_product_create_normalises_codes_and_values(brand):
    product = make(brand, currency="usd", countries=["us", "ca", "US"], denomination_values=["50", "10.00", "25", "10"])
    product.refresh_from_db()
    assert product.currency == "USD"
    assert product.countries == ["CA", "US"]
    assert product.denomination_values == [Decimal("10"), Decimal("25"), Decimal("50")]
    assert product.supplier.code == "sandbox"  # the default supplier
    assert product.type == ProductType.DIGITAL


def test_fixed_product_needs_values(brand):
    assert "denomination_values" in refusal(brand, denomination_values=[]).errors


def test_range_product_needs_min_below_max(brand):
    error = refusal(brand, denomination_type="range", denomination_values=None, denomination_min="50",
                    denomination_max="50")  # fmt: skip
    assert error.errors["denomination_max"] == ["The maximum must be greater than the minimum."]
    error = refusal(brand, denomination_type="range", denomination_values=None, denomination_min="5")
    assert "denomination_min" in error.errors


def test_fixed_product_may_not_have_a_range_and_vice_versa(brand):
    assert "denomination_min" in refusal(brand, denomination_min="5", denomination_max="10").errors
    error = refusal(brand, denomination_type="range", denomination_min="5", denomination_max="10")
    assert "denomination_values" in error.errors  # the default ["25"] of a fixed product


@pytest.mark.parametrize(
    ("currency", "values", "field"),
    [("USD", ["10.005"], "denomination_values"), ("JPY", ["1000.5"], "denomination_values"),
     ("USD", ["-5"], "denomination_values"), ("usdollar", ["10"], "currency"), ("USD", ["ten"], "denomination_values")],
)  # fmt: skip
def test_amounts_must_fit_the_currency(brand, currency, values, field):
    assert field in refusal(brand, currency=currency, denomination_values=values).errors


def test_three_decimal_currency_accepts_fils(brand):
    product = make(brand, currency="KWD", countries=["KW"], denomination_values=["1.250"])
    assert product.denomination_values == [Decimal("1.250")]


def test_countries_must_be_alpha2(brand):
    assert "countries" in refusal(brand, countries=["USA"]).errors
    assert "countries" in refusal(brand, countries=[]).errors


def test_unknown_type_is_refused(brand):
    assert "type" in refusal(brand, type="voucher").errors


def test_choice_product_rules(brand):
    usd = make(brand)
    eur = make(brand, name="Oak & Ember EU", currency="EUR", countries=["DE"])
    assert "choice_options" in refusal(brand, type="choice", choice_options=[]).errors
    assert "choice_options" in refusal(brand, type="choice", choice_options=[usd, eur]).errors
    choice = make(brand, name="Pick one", type="choice", choice_options=[usd])
    assert "choice_options" in refusal(brand, type="choice", choice_options=[choice]).errors
    assert "choice_options" in refusal(brand, choice_options=[usd]).errors  # a digital product has none
    assert list(choice.choice_options.all()) == [usd]


def test_product_update_keeps_choice_options_unless_given(brand):
    usd = make(brand)
    choice = make(brand, name="Pick one", type="choice", choice_options=[usd])
    product_update(product=choice, brand=brand, name="Pick one!", type="choice", currency="USD", countries=["US"],
                   denomination_type="range", denomination_min="5", denomination_max="100")  # fmt: skip
    choice.refresh_from_db()
    assert choice.name == "Pick one!" and choice.denomination_type == "range"
    assert list(choice.choice_options.all()) == [usd]


def test_database_refuses_invalid_denominations_even_without_the_service(brand):
    supplier = make(brand).supplier
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(
            brand=brand, name="x", currency="USD", countries=["US"], denomination_type="range",
            denomination_min=Decimal(10), denomination_max=Decimal(5), supplier=supplier,
        )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(brand=brand, name="x", currency="USD", countries=["US"], denomination_type="fixed",
                               denomination_values=[], supplier=supplier)  # fmt: skip


def test_shipping_method_validation(db):
    method = shipping_method_upsert(name="Ground", carrier="Eagle Parcel", countries=["us"], price="5.99",
                                    currency="usd", estimated_days=4)  # fmt: skip
    assert (method.countries, method.currency) == (["US"], "USD")
    with pytest.raises(ApplicationError) as info:
        shipping_method_upsert(name="Bad", carrier="X", countries=["US"], price="5.999", currency="USD",
                               estimated_days=4)  # fmt: skip
    assert "price" in info.value.errors
    assert ShippingMethod.objects.count() == 1


def test_fx_rate_create_validates_and_is_idempotent(db):
    first = fx_rate_create(base="usd", quote="eur", rate="0.92")
    again = fx_rate_create(base="USD", quote="EUR", rate="0.93", as_of=first.as_of)
    assert again.pk == first.pk and again.rate == Decimal("0.93")
    for bad in ({"base": "USD", "quote": "USD", "rate": "1"}, {"base": "USD", "quote": "EUR", "rate": "-1"},
                {"base": "US", "quote": "EUR", "rate": "1"}):  # fmt: skip
        with pytest.raises(ApplicationError):
            fx_rate_create(**bad)


# --- FX CSV loader ------------------------------------------------------------------------------------


def write_csv(tmp_path, text: str):
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return path


def test_fx_rates_load_loads_every_row(db, tmp_path):
    path = write_csv(tmp_path, "base,quote,rate,as_of\nUSD,EUR,0.9200,2025-01-01\nusd,gbp,0.79,2025-01-01T12:00:00Z\n")
    assert fx_rates_load(path=path) == 2
    assert FxRate.objects.get(base="USD", quote="GBP").as_of.isoformat() == "2025-01-01T12:00:00+00:00"
    assert fx_rates_load(path=path) == 2  # same rows again: replaced, not duplicated
    assert FxRate.objects.count() == 2


def test_fx_rates_load_with_a_bad_row_loads_nothing(db, tmp_path):
    fx_rate_create(base="USD", quote="EUR", rate="0.90")
    before = list(FxRate.objects.values_list("base", "quote", "rate", "as_of"))
    path = write_csv(
        tmp_path,
        "base,quote,rate,as_of\nUSD,EUR,0.92,2025-01-01\nUSD,GBP,abc,2025-01-01\nUSD,CAD,1.36,yesterday\n"
        "EURO,CAD,1.4,2025-01-01\nUSD,EUR,0.92,2025-01-01\n",
    )
    with pytest.raises(ApplicationError) as info:
        fx_rates_load(path=path)
    errors = info.value.errors
    assert set(errors) == {"row 3", "row 4", "row 5", "row 6"}
    assert "rate" in errors["row 3"][0]
    assert "as_of" in errors["row 4"][0]
    assert "base" in errors["row 5"][0]
    assert "duplicates row 2" in errors["row 6"][0]
    assert "nothing was loaded" in info.value.detail
    assert list(FxRate.objects.values_list("base", "quote", "rate", "as_of")) == before


def test_fx_rates_load_command_reports_the_row_and_exits_non_zero(db, tmp_path):
    path = write_csv(tmp_path, "base,quote,rate,as_of\nUSD,EUR,0.92,2025-01-01\nUSD,GBP,0,2025-01-01\n")
    with pytest.raises(CommandError) as info:
        call_command("fx_rates_load", str(path))
    assert "row 3" in str(info.value) and info.value.returncode == 2
    assert FxRate.objects.count() == 0
    missing = write_csv(tmp_path, "base,quote,rate\nUSD,EUR,0.92\n")
    with pytest.raises(CommandError, match="as_of"):
        call_command("fx_rates_load", str(missing))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("fx_rates_load", str(tmp_path / "absent.csv"))


def test_fx_rates_load_command_prints_the_count(db, tmp_path, capsys):
    path = write_csv(tmp_path, "base,quote,rate,as_of\nUSD,EUR,0.92,2025-01-01\n")
    call_command("fx_rates_load", str(path))
    assert "Loaded 1 FX rate(s)." in capsys.readouterr().out


# --- Demo catalogue -------------------------------------------------------------------------------------


def test_catalog_load_demo_is_idempotent_and_varied(db):
    call_command("catalog_load_demo")
    counts = (Brand.objects.count(), Product.objects.count(), ShippingMethod.objects.count(), FxRate.objects.count())
    call_command("catalog_load_demo")
    assert (Brand.objects.count(), Product.objects.count(), ShippingMethod.objects.count(),
            FxRate.objects.count()) == counts  # fmt: skip
    assert counts[0] >= 30
    products = list(Product.objects.prefetch_related("choice_options"))
    countries = {country for product in products for country in product.countries}
    assert {"US", "GB", "DE", "FR", "CA", "AU", "JP", "MY"} <= countries
    assert {"USD", "GBP", "EUR", "CAD", "AUD", "JPY", "MYR"} <= {product.currency for product in products}
    assert FxRate.objects.filter(base="USD", quote="MYR").exists() and FxRate.objects.filter(base="MYR").count() >= 6
    assert {"fixed", "range"} == {product.denomination_type for product in products}
    types = [product.type for product in products]
    assert types.count("choice") >= 2 and "physical" in types and "experience" in types
    for product in products:
        product.full_clean()
        if product.type == "choice":
            assert product.choice_options.all() and all(
                o.currency == product.currency for o in product.choice_options.all()
            )
    assert Supplier.objects.filter(code="sandbox", kind="sandbox").exists()
    carriers = {method.carrier for method in ShippingMethod.objects.all()}
    assert len(carriers) >= 6
