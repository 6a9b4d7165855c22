"""Catalogue fixtures built through the services: a small catalogue across currencies and countries."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from catalog.models import Brand, Product, ShippingMethod
from catalog.services import brand_upsert, product_create, shipping_method_upsert


@dataclass
class SmallCatalog:
    acorn: Brand
    bluebird: Brand
    acorn_usd: Product  # digital, fixed 10/25/50 USD, US
    acorn_gbp: Product  # digital, range 5-500 GBP, GB
    bluebird_eur: Product  # physical, fixed 20/50 EUR, DE+FR
    bluebird_jpy: Product  # experience, range 1000-50000 JPY, JP
    choice_usd: Product  # choice among acorn_usd and a second USD product
    lantern_usd: Product  # digital, range 5-200 USD, US+CA
    ground_eu: ShippingMethod
    express_us: ShippingMethod


@pytest.fixture
def catalog(db) -> SmallCatalog:
    acorn = brand_upsert(
        slug="acorn-books",
        name="Acorn Books",
        logo_url="https://img.example/acorn.png",
        description="Books.",
        terms="No cash value.",
        redemption_instructions="Enter the code.",
    )
    bluebird = brand_upsert(slug="bluebird-spa", name="Bluebird Spa")
    lantern = brand_upsert(slug="lantern-coffee", name="Lantern Coffee")
    acorn_usd = product_create(
        brand=acorn,
        name="Acorn Books US",
        currency="USD",
        countries=["us"],
        denomination_type="fixed",
        denomination_values=["10", "25.00", "50"],
    )
    acorn_gbp = product_create(
        brand=acorn,
        name="Acorn Books UK",
        currency="GBP",
        countries=["GB"],
        denomination_type="range",
        denomination_min="5",
        denomination_max="500",
    )
    bluebird_eur = product_create(
        brand=bluebird,
        name="Bluebird Gift Box",
        type="physical",
        currency="EUR",
        countries=["DE", "FR"],
        denomination_type="fixed",
        denomination_values=["20", "50"],
    )
    bluebird_jpy = product_create(
        brand=bluebird,
        name="Bluebird Day Spa",
        type="experience",
        currency="JPY",
        countries=["JP"],
        denomination_type="range",
        denomination_min="1000",
        denomination_max="50000",
    )
    lantern_usd = product_create(
        brand=lantern,
        name="Lantern Coffee Card",
        currency="USD",
        countries=["US", "CA"],
        denomination_type="range",
        denomination_min="5",
        denomination_max="200",
    )
    choice_usd = product_create(
        brand=acorn,
        name="Reader's Choice",
        type="choice",
        currency="USD",
        countries=["US"],
        denomination_type="fixed",
        denomination_values=["25", "50"],
        choice_options=[acorn_usd, lantern_usd],
    )
    ground_eu = shipping_method_upsert(
        name="EU Ground", carrier="PostaEuropa", countries=["DE", "FR"], price="4.90", currency="EUR", estimated_days=5
    )
    express_us = shipping_method_upsert(
        name="US Express", carrier="SwiftShip", countries=["US"], price="12.00", currency="USD", estimated_days=2
    )
    return SmallCatalog(
        acorn,
        bluebird,
        acorn_usd,
        acorn_gbp,
        bluebird_eur,
        bluebird_jpy,
        choice_usd,
        lantern_usd,
        ground_eu,
        express_us,
    )
