"""Test helpers for orders: a small catalogue built through catalog services, FX rates, order bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from catalog.models import Product, ShippingMethod
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


def digital_order(product, amount="25.00", **overrides):
    body = {
        "type": "digital",
        "rewards": [
            {
                "product_id": str(product.id),
                "amount": amount,
                "currency": product.currency,
                "delivery_method": "email",
                "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
                "message": "Thank you!",
            }
        ],
    }
    body.update(overrides)
    return body


US_ADDRESS = {
    "name": "Grace Hopper",
    "line1": "1 Navy Way",
    "city": "Arlington",
    "state": "VA",
    "postal_code": "22202",
    "country": "US",
}
