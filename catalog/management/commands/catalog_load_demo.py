"""`catalog_load_demo`: an idempotent demo catalogue of fictional brands (no real trademarks).

Ids are derived from stable keys (uuid5), so running it again updates the same rows instead of adding
new ones. Every product is issued by the built-in sandbox supplier.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from catalog.models import Product
from catalog.services import (
    brand_upsert,
    fx_rate_create,
    product_create,
    product_update,
    shipping_method_upsert,
    supplier_default_get,
)
from tenants.management.base import OperatorCommand

DEMO_NAMESPACE = uuid.UUID("5b0c8f2e-4a57-4d0e-9a63-0f6f2c1d9e77")


def demo_id(kind: str, key: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, f"{kind}:{key}")


def logo(slug: str) -> str:
    # Drawn by this app (catalog/views.py): the brands are fictional, and nothing is fetched from elsewhere.
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/demo/brand-logos/{slug}.svg"


# slug, name, description
BRANDS = [
    ("northwind-books", "Northwind Books", "Paperbacks, hardcovers and e-books in every genre."),
    ("copper-kettle-coffee", "Copper Kettle Coffee", "Neighbourhood coffee houses and freshly roasted beans."),
    ("bluefin-outfitters", "Bluefin Outfitters", "Outdoor clothing, boots and camping gear."),
    ("pixel-harbor-games", "Pixel Harbor Games", "Digital games, add-ons and in-game credit."),
    ("greenleaf-grocers", "Greenleaf Grocers", "Fresh produce and everyday groceries."),
    ("starlit-cinemas", "Starlit Cinemas", "Movie tickets, popcorn and premium screenings."),
    ("velvet-spoon", "The Velvet Spoon", "A group of casual and fine-dining restaurants."),
    ("maple-and-pine", "Maple & Pine Home", "Homeware, textiles and furniture."),
    ("tidewater-spa", "Tidewater Spa", "Day spa treatments and wellness retreats."),
    ("skyward-adventures", "Skyward Adventures", "Balloon flights, zip lines and gliding lessons."),
    ("rheinblick-kaufhaus", "Rheinblick Kaufhaus", "A department store for fashion, home and delicatessen."),
    ("boulangerie-lumiere", "Boulangerie Lumière", "Artisan breads, pastries and café lunches."),
    ("maison-celeste", "Maison Céleste", "Contemporary fashion and accessories."),
    ("kensington-teahouse", "Kensington Teahouse", "Afternoon tea and loose-leaf blends."),
    ("thistle-and-rose", "Thistle & Rose", "Seasonal bouquets and plants, delivered."),
    ("aurora-rail", "Aurora Rail Journeys", "Scenic rail journeys with dining cars."),
    ("outback-pantry", "Outback Pantry", "Groceries and gourmet hampers."),
    ("coral-coast-surf", "Coral Coast Surf", "Surfboards, wetsuits and lessons."),
    ("sakura-lane-stationery", "Sakura Lane Stationery", "Notebooks, pens and washi tape."),
    ("kumo-ramen", "Kumo Ramen", "Noodle bars with seasonal broths."),
    ("true-north-trading", "True North Trading Co.", "Canadian-made outerwear and gear."),
    ("loon-lake-market", "Loon Lake Market", "Groceries, bakery and household goods."),
    ("voltline-electronics", "Voltline Electronics", "Laptops, headphones and smart-home devices."),
    ("runwell-athletics", "Runwell Athletics", "Running shoes and sports apparel."),
    ("petal-and-paw", "Petal & Paw", "Pet food, toys and grooming."),
    ("bright-sprout-toys", "Bright Sprout Toys", "Educational toys and games for all ages."),
    ("harborview-hotels", "Harborview Hotels", "Boutique hotel stays and weekend breaks."),
    ("canvas-and-clay", "Canvas & Clay Studios", "Pottery, painting and craft workshops."),
    ("wanderlight-travel", "Wanderlight Travel", "Flights, trains and holiday packages."),
    ("everglow-beauty", "Everglow Beauty", "Skincare, fragrance and cosmetics."),
    ("streamwave-music", "Streamwave Music", "Music streaming subscriptions and downloads."),
    ("goodfork-meals", "Goodfork Meal Kits", "Recipe boxes delivered weekly."),
    ("portal-choice", "Rewards Portal Choice", "Let the recipient choose from a curated selection."),
    # Malaysia (fictional too)
    ("kopi-selasih", "Kopi Selasih", "Kopitiam breakfasts, kaya toast and local coffee."),
    ("pasar-hijau", "Pasar Hijau", "Fresh groceries and household goods across Malaysia."),
    ("teraju-elektronik", "Teraju Elektronik", "Phones, laptops and home appliances."),
    ("batik-serai", "Batik Serai", "Hand-drawn batik clothing and gifts."),
    ("pawagam-bulan", "Pawagam Bulan", "Cinema tickets and snacks."),
]
TERMS = "No cash value. Not reloadable. Lost or stolen codes cannot be replaced. Demo data: fictional brand."
REDEEM = {
    "digital": "Enter the code at checkout online or show it in store.",
    "physical": "The card arrives by post; activate it at the address printed on the back.",
    "experience": "Book online with the voucher code at least 7 days ahead.",
    "choice": "Open your reward link and pick one of the offered gift cards.",
}

EUROZONE = "AT BE DE ES FR IT NL"

# key, brand slug, name, type, currency, countries, denominations ("10 25 50" fixed or "5-500" range), barcode
PRODUCTS = [
    (
        "northwind-us",
        "northwind-books",
        "Northwind Books eGift (US)",
        "digital",
        "USD",
        "US",
        "10 25 50 100",
        "code128",
    ),
    ("northwind-gb", "northwind-books", "Northwind Books eGift (UK)", "digital", "GBP", "GB", "5-500", ""),
    ("northwind-card-us", "northwind-books", "Northwind Books Gift Card", "physical", "USD", "US", "25 50 100", ""),
    ("copper-kettle-us", "copper-kettle-coffee", "Copper Kettle eGift (US)", "digital", "USD", "US", "5-200", "qr"),
    ("copper-kettle-ca", "copper-kettle-coffee", "Copper Kettle eGift (Canada)", "digital", "CAD", "CA", "5-200", "qr"),
    ("bluefin-us", "bluefin-outfitters", "Bluefin Outfitters eGift", "digital", "USD", "US", "25 50 100 250", ""),
    ("bluefin-ca", "bluefin-outfitters", "Bluefin Outfitters eGift (Canada)", "digital", "CAD", "CA", "25 50 100", ""),
    ("pixel-harbor-us", "pixel-harbor-games", "Pixel Harbor Credit (US)", "digital", "USD", "US CA", "10 20 50", ""),
    ("pixel-harbor-eu", "pixel-harbor-games", "Pixel Harbor Credit (EU)", "digital", "EUR", EUROZONE, "10 20 50", ""),
    (
        "pixel-harbor-jp",
        "pixel-harbor-games",
        "Pixel Harbor Credit (Japan)",
        "digital",
        "JPY",
        "JP",
        "1000 3000 5000",
        "",
    ),
    ("greenleaf-us", "greenleaf-grocers", "Greenleaf Grocers eGift", "digital", "USD", "US", "10-500", "code128"),
    ("starlit-us", "starlit-cinemas", "Starlit Cinemas eGift (US)", "digital", "USD", "US", "15 25 50", "qr"),
    ("starlit-gb", "starlit-cinemas", "Starlit Cinemas eGift (UK)", "digital", "GBP", "GB", "10 20 40", "qr"),
    ("velvet-spoon-us", "velvet-spoon", "The Velvet Spoon Dining eGift", "digital", "USD", "US", "25-300", ""),
    ("maple-pine-gb", "maple-and-pine", "Maple & Pine eGift", "digital", "GBP", "GB", "10-1000", ""),
    ("maple-pine-box-gb", "maple-and-pine", "Maple & Pine Gift Box", "physical", "GBP", "GB", "30 60", ""),
    ("tidewater-spa-us", "tidewater-spa", "Tidewater Spa Day for Two", "experience", "USD", "US", "150 250", ""),
    ("skyward-gb", "skyward-adventures", "Skyward Sunrise Balloon Flight", "experience", "GBP", "GB", "120 220", ""),
    ("skyward-au", "skyward-adventures", "Skyward Zip Line Adventure", "experience", "AUD", "AU", "90 180", ""),
    ("rheinblick-de", "rheinblick-kaufhaus", "Rheinblick eGutschein", "digital", "EUR", "AT DE", "5-500", "code128"),
    ("rheinblick-card-de", "rheinblick-kaufhaus", "Rheinblick Geschenkkarte", "physical", "EUR", "DE", "25 50 100", ""),
    ("lumiere-fr", "boulangerie-lumiere", "Boulangerie Lumière e-carte", "digital", "EUR", "FR", "10 20 30", "qr"),
    ("celeste-fr", "maison-celeste", "Maison Céleste e-carte cadeau", "digital", "EUR", "BE FR", "20-750", ""),
    ("kensington-gb", "kensington-teahouse", "Kensington Afternoon Tea for Two", "experience", "GBP", "GB", "65", ""),
    ("thistle-rose-gb", "thistle-and-rose", "Thistle & Rose Bouquet", "physical", "GBP", "GB", "35 55 80", ""),
    ("aurora-rail-ca", "aurora-rail", "Aurora Rail Scenic Day Trip", "experience", "CAD", "CA", "199 349", ""),
    ("outback-pantry-au", "outback-pantry", "Outback Pantry eGift", "digital", "AUD", "AU", "10-500", "code128"),
    ("coral-coast-au", "coral-coast-surf", "Coral Coast Surf eGift", "digital", "AUD", "AU", "50 100 200", ""),
    ("sakura-lane-jp", "sakura-lane-stationery", "Sakura Lane eGift", "digital", "JPY", "JP", "500-30000", "qr"),
    ("kumo-ramen-jp", "kumo-ramen", "Kumo Ramen Meal Voucher", "digital", "JPY", "JP", "1000 2000 5000", "qr"),
    ("true-north-ca", "true-north-trading", "True North Trading eGift", "digital", "CAD", "CA", "25-500", ""),
    ("loon-lake-ca", "loon-lake-market", "Loon Lake Market eGift", "digital", "CAD", "CA", "25 50 100", ""),
    ("voltline-us", "voltline-electronics", "Voltline Electronics eGift (US)", "digital", "USD", "US", "25-2000", ""),
    (
        "voltline-de",
        "voltline-electronics",
        "Voltline Electronics eGift (EU)",
        "digital",
        "EUR",
        "DE FR NL",
        "25-1500",
        "",
    ),
    ("runwell-us", "runwell-athletics", "Runwell Athletics eGift", "digital", "USD", "US CA", "25 50 100", ""),
    ("runwell-au", "runwell-athletics", "Runwell Athletics eGift (AU)", "digital", "AUD", "AU", "25 50 100", ""),
    ("petal-paw-us", "petal-and-paw", "Petal & Paw eGift", "digital", "USD", "US", "10-250", ""),
    ("bright-sprout-gb", "bright-sprout-toys", "Bright Sprout Toys eGift", "digital", "GBP", "GB", "10 25 50", ""),
    ("bright-sprout-box-us", "bright-sprout-toys", "Bright Sprout Toy Box", "physical", "USD", "US", "40 75", ""),
    (
        "harborview-fr",
        "harborview-hotels",
        "Harborview Weekend Break (Marseille)",
        "experience",
        "EUR",
        "FR",
        "280 450",
        "",
    ),
    ("canvas-clay-au", "canvas-and-clay", "Canvas & Clay Pottery Workshop", "experience", "AUD", "AU", "120", ""),
    ("canvas-clay-jp", "canvas-and-clay", "Canvas & Clay Kyoto Workshop", "experience", "JPY", "JP", "8000 15000", ""),
    ("wanderlight-gb", "wanderlight-travel", "Wanderlight Travel eGift", "digital", "GBP", "GB", "50-2500", ""),
    ("everglow-fr", "everglow-beauty", "Everglow Beauty e-carte", "digital", "EUR", "BE FR", "25 50 75", ""),
    ("everglow-us", "everglow-beauty", "Everglow Beauty eGift", "digital", "USD", "US", "25 50 75", ""),
    ("streamwave-us", "streamwave-music", "Streamwave 6-Month Premium", "digital", "USD", "US CA GB", "60", ""),
    ("goodfork-de", "goodfork-meals", "Goodfork Kochbox Gutschein", "digital", "EUR", "AT DE", "30 60 90", ""),
    ("kopi-selasih-my", "kopi-selasih", "Kopi Selasih e-Baucar", "digital", "MYR", "MY", "10 20 50", "qr"),
    ("pasar-hijau-my", "pasar-hijau", "Pasar Hijau e-Baucar", "digital", "MYR", "MY", "20-1000", "code128"),
    ("teraju-my", "teraju-elektronik", "Teraju Elektronik eGift", "digital", "MYR", "MY", "50 100 200 500", ""),
    ("batik-serai-box-my", "batik-serai", "Batik Serai Gift Box", "physical", "MYR", "MY", "80 150", ""),
    ("pawagam-bulan-my", "pawagam-bulan", "Pawagam Bulan Movie Pass for Two", "experience", "MYR", "MY", "45", "qr"),
]
# key, name, currency, countries, denominations, option keys (same currency, listed above)
CHOICES = [
    (
        "choice-us-everyday",
        "Everyday Choice (US)",
        "USD",
        "US",
        "25 50",
        "northwind-us copper-kettle-us greenleaf-us starlit-us runwell-us",
    ),
    (
        "choice-gb-treat",
        "Treat Yourself Choice (UK)",
        "GBP",
        "GB",
        "20 40",
        "northwind-gb starlit-gb maple-pine-gb bright-sprout-gb",
    ),
    (
        "choice-eu-shopping",
        "Shopping Choice (Europe)",
        "EUR",
        "DE FR",
        "20-200",
        "rheinblick-de celeste-fr voltline-de everglow-fr",
    ),
    (
        "choice-my-pilihan",
        "Pilihan Hadiah (Malaysia)",
        "MYR",
        "MY",
        "50 100",
        "pasar-hijau-my teraju-my kopi-selasih-my",
    ),
]
# key, name, carrier, countries, price, currency, days
SHIPPING = [
    ("us-standard", "Standard (US)", "Eagle Parcel", "US", "5.99", "USD", 5),
    ("us-express", "Express (US)", "SwiftShip", "US", "14.99", "USD", 2),
    ("gb-standard", "Standard (UK)", "Albion Post", "GB", "3.49", "GBP", 3),
    ("gb-next-day", "Next day (UK)", "Albion Post", "GB", "7.99", "GBP", 1),
    ("de-standard", "Standard (DE/AT)", "Rheinpost", "AT DE", "4.90", "EUR", 3),
    ("fr-standard", "Standard (FR/BE)", "Hexagone Colis", "BE FR", "5.50", "EUR", 4),
    ("ca-standard", "Standard (Canada)", "Maple Courier", "CA", "8.50", "CAD", 6),
    ("au-standard", "Standard (Australia)", "Southern Cross Freight", "AU", "9.95", "AUD", 5),
    ("jp-standard", "Standard (Japan)", "Hikari Bin", "JP", "800", "JPY", 2),
    ("my-standard", "Standard (Malaysia)", "Kenari Express", "MY", "8.00", "MYR", 3),
    ("intl-tracked", "International tracked", "GlobeTrack", "AU CA DE FR GB JP MY US", "24.00", "USD", 10),
]

# 1 USD in each currency; cross rates are derived, so every pair is consistent.
USD_RATES = {"USD": "1", "EUR": "0.92", "GBP": "0.79", "CAD": "1.36", "AUD": "1.52", "JPY": "151.30", "MYR": "4.47"}
FX_AS_OF = datetime(2025, 1, 1, tzinfo=UTC)


def denomination_fields(spec: str) -> dict:
    """ "10 25 50" → fixed values; "5-500" → a range."""
    if "-" in spec:
        low, high = spec.split("-")
        return {"denomination_type": "range", "denomination_min": low, "denomination_max": high}
    return {"denomination_type": "fixed", "denomination_values": spec.split()}


class Command(OperatorCommand):
    help = "Load (or refresh) the demo catalogue: fictional brands, products, shipping methods and FX rates."

    @transaction.atomic
    def handle(self, *args, **options) -> str:
        supplier = supplier_default_get()
        brands = {
            slug: brand_upsert(
                slug=slug,
                name=name,
                logo_url=logo(slug),
                description=description,
                terms=TERMS,
                redemption_instructions=REDEEM["digital"],
            )
            for slug, name, description in BRANDS
        }
        products: dict[str, Product] = {}
        for key, brand_slug, name, kind, currency, countries, denominations, barcode in PRODUCTS:
            fields = dict(
                brand=brands[brand_slug],
                name=name,
                type=kind,
                currency=currency,
                countries=countries.split(),
                supplier=supplier,
                cost_discount_percent=Decimal("3.50"),
                barcode_format=barcode,
                description="" if kind == "digital" else REDEEM[kind],
                **denomination_fields(denominations),
            )
            products[key] = self._save(demo_id("product", key), fields)
        for key, name, currency, countries, denominations, option_keys in CHOICES:
            fields = dict(
                brand=brands["portal-choice"],
                name=name,
                type="choice",
                currency=currency,
                countries=countries.split(),
                supplier=supplier,
                description=REDEEM["choice"],
                choice_options=[products[option] for option in option_keys.split()],
                **denomination_fields(denominations),
            )
            products[key] = self._save(demo_id("product", key), fields)
        for key, name, carrier, countries, price, currency, days in SHIPPING:
            shipping_method_upsert(
                shipping_method_id=demo_id("shipping", key),
                name=name,
                carrier=carrier,
                countries=countries.split(),
                price=price,
                currency=currency,
                estimated_days=days,
            )
        rates = 0
        for base, base_rate in USD_RATES.items():
            for quote, quote_rate in USD_RATES.items():
                if base != quote:
                    rate = (Decimal(quote_rate) / Decimal(base_rate)).quantize(Decimal("1e-10"))
                    fx_rate_create(base=base, quote=quote, rate=rate, as_of=FX_AS_OF)
                    rates += 1
        return (
            f"Demo catalogue: {len(brands)} brands, {len(products)} products, "
            f"{len(SHIPPING)} shipping methods, {rates} FX rates."
        )

    @staticmethod
    def _save(product_id: uuid.UUID, fields: dict) -> Product:
        existing = Product.objects.filter(pk=product_id).first()
        if existing is not None:
            return product_update(product=existing, **fields)
        return product_create(product_id=product_id, **fields)
