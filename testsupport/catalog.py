"""Catalogues for tests, built through the catalogue services: `make_shop()` (what the order tests buy) and
`make_small_catalog()` (what the catalogue tests list: several brands, types, currencies and countries)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from catalog.models import Brand, Product, ShippingMethod
from catalog.services import brand_upsert, fx_rate_create, product_create, shipping_method_upsert


@dataclass
class Shop:
    coffee_usd: Product  # digital, fixed 10/25/50 USD, US
    books_gbp: Product  # digital, range 5-500 GBP, GB
    hamper_usd: Product  # physical, fixed 50/100 USD, US
    mug_eur: Product  # physical, fixed 20 EUR, DE/FR
    ground_us: ShippingMethod
    ground_eu: ShippingMethod


def make_shop() -> Shop:
    tag = uuid.uuid4().hex[:6]
    coffee = brand_upsert(slug=f"lumen-coffee-{tag}", name="Lumen Coffee")
    books = brand_upsert(slug=f"quire-books-{tag}", name="Quire Books")
    hamper = brand_upsert(slug=f"harvest-hampers-{tag}", name="Harvest Hampers")
    shop = Shop(
        coffee_usd=product_create(
            brand=coffee, name="Lumen Coffee eGift", currency="USD", countries=["US"], denomination_type="fixed",
            denomination_values=["10", "25", "50"],
        ),
        books_gbp=product_create(
            brand=books, name="Quire Books UK", currency="GBP", countries=["GB"], denomination_type="range",
            denomination_min="5", denomination_max="500",
        ),
        hamper_usd=product_create(
            brand=hamper, name="Harvest Hamper", type="physical", currency="USD", countries=["US"],
            denomination_type="fixed", denomination_values=["50", "100"],
        ),
        mug_eur=product_create(
            brand=hamper, name="Harvest Mug", type="physical", currency="EUR", countries=["DE", "FR"],
            denomination_type="fixed", denomination_values=["20"],
        ),
        ground_us=shipping_method_upsert(
            name=f"US Ground {tag}", carrier="Parcelway", countries=["US"], price="8.00", currency="USD",
            estimated_days=4,
        ),
        ground_eu=shipping_method_upsert(
            name=f"EU Ground {tag}", carrier="PostaEuropa", countries=["DE", "FR"], price="4.90", currency="EUR",
            estimated_days=5,
        ),
    )  # fmt: skip
    fx_rate_create(base="GBP", quote="USD", rate="1.25")
    fx_rate_create(base="EUR", quote="USD", rate="1.10")
    return shop


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


def make_small_catalog() -> SmallCatalog:
    """Its slugs and names are fixed (the catalogue tests assert them): build it once per test."""
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
    )  # fmt: skip
    return SmallCatalog(
        acorn, bluebird, acorn_usd, acorn_gbp, bluebird_eur, bluebird_jpy, choice_usd, lantern_usd, ground_eu,
        express_us,
    )  # fmt: skip
