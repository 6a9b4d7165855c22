"""The global catalogue (public schema): suppliers, brands, products with their denominations, shipping
methods and FX rates. Operators manage it; tenants curate what they see (programs.CatalogRule).

Invariants that the database can hold are CheckConstraints; the rest (ISO codes, amounts at the
currency's precision) live in `clean()`, which the services and the admin both run.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import cast

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.money import exponent, format_amount, quantize

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def currency_errors(value: str) -> list[str]:
    return [] if CURRENCY_RE.match(value or "") else [f"{value!r} is not an ISO 4217 code such as USD."]


def country_errors(values: list[str]) -> list[str]:
    bad = [value for value in values if not COUNTRY_RE.match(value or "")]
    return [f"Not ISO 3166 alpha-2 country codes: {', '.join(map(repr, bad))}."] if bad else []


def precision_errors(amount: Decimal | None, currency: str) -> list[str]:
    if amount is None or not CURRENCY_RE.match(currency or ""):
        return []
    if amount <= 0:
        return [f"{amount} must be positive."]
    if amount != quantize(amount, currency):
        return [f"{amount}: {currency} amounts have at most {exponent(currency)} decimal places."]
    return []


class SupplierKind(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox (generated codes)"
    INVENTORY = "inventory", "Code inventory"
    HTTP = "http", "HTTP vendor API"


class Supplier(models.Model):
    """Who issues the codes for a product, behind one adapter interface (see fulfillment)."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SupplierKind.choices)
    config = models.JSONField(default=dict, blank=True)  # adapter settings; never secrets in clear text
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class StoredImage(models.Model):
    """An uploaded logo (a brand's, or a tenant program's), kept by the platform and served by it from
    /media/logos/<key> (catalog.images): recipients' mail and pages never load images from other hosts.
    Content-addressed: the key is the SHA-256 of the bytes plus the format's extension, so a URL never changes
    meaning and may be cached for ever."""

    key = models.CharField(max_length=80, primary_key=True)
    content_type = models.CharField(max_length=40)
    data = models.BinaryField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class Brand(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    # Shown only when it is a path served by this app (the demo catalogue's drawn logos); an uploaded `logo`
    # wins. Logos on other hosts are never shown: they break, and they tell those hosts who opened a gift.
    logo_url = models.URLField(max_length=500, blank=True)
    logo = models.ForeignKey(StoredImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    description = models.TextField(blank=True)
    terms = models.TextField(blank=True)
    redemption_instructions = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProductType(models.TextChoices):
    DIGITAL = "digital", "Digital code"
    PHYSICAL = "physical", "Physical card or gift"
    EXPERIENCE = "experience", "Experience"
    CHOICE = "choice", "Recipient's choice"
    # A voucher for a percentage or an amount off at a merchant; its use is reported by the merchant's partner key
    # (POST /api/v1/discounts/redemptions, fulfillment.discounts).
    DISCOUNT = "discount", "Discount voucher"


class DiscountKind(models.TextChoices):
    PERCENT = "percent", "Percentage off"
    AMOUNT = "amount", "Amount off"


class DenominationType(models.TextChoices):
    FIXED = "fixed", "Fixed values"
    RANGE = "range", "Any amount in a range"


class BarcodeFormat(models.TextChoices):
    NONE = "", "None"
    QR = "qr", "QR code"
    CODE128 = "code128", "Code 128"


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The stable human reference integrators and spreadsheets use instead of the id ("amazon-us-usd"): accepted
    # wherever a product_id is. Lower-case letters, digits and hyphens; chosen from brand, country and currency
    # when not given (catalog.services.product_sku_suggest).
    sku = models.SlugField(max_length=64, unique=True)
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)  # empty: the brand's description is shown
    type = models.CharField(max_length=16, choices=ProductType.choices, default=ProductType.DIGITAL)
    currency = models.CharField(max_length=3)
    # Where the product can be redeemed (ISO 3166 alpha-2).
    countries = ArrayField(models.CharField(max_length=2), default=list)
    denomination_type = models.CharField(max_length=8, choices=DenominationType.choices)
    # Stored with 4 places for every currency; clean() holds them to the currency's own precision.
    denomination_values = ArrayField(models.DecimalField(max_digits=20, decimal_places=4), default=list, blank=True)
    denomination_min = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    denomination_max = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    is_orderable = models.BooleanField(default=True)
    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="products")
    # Our discount from the supplier's face value (margin reporting); 0-100.
    cost_discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    # For `choice` products: what the recipient may pick from (see services.product_choice_options_check).
    choice_options = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="offered_by")
    barcode_format = models.CharField(max_length=8, choices=BarcodeFormat.choices, blank=True, default="")
    # For `discount` products only: what the voucher takes off (a percentage, or an amount in `currency`) and
    # the dates it is valid on at the merchant (the brand); shown as "20% off at X until <date>".
    discount_kind = models.CharField(max_length=8, choices=DiscountKind.choices, blank=True, default="")
    discount_value = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            GinIndex(fields=["countries"], name="catalog_product_countries_gin"),
            models.Index(fields=["currency", "type"], name="catalog_product_cur_type"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(denomination_type="fixed", denomination_values__len__gt=0)
                    | Q(
                        denomination_type="range",
                        denomination_min__isnull=False,
                        denomination_max__isnull=False,
                        denomination_min__gt=0,
                        denomination_min__lt=F("denomination_max"),
                    )
                ),
                name="catalog_product_denominations_valid",
            ),
            models.CheckConstraint(
                condition=Q(cost_discount_percent__gte=0, cost_discount_percent__lte=100),
                name="catalog_product_discount_0_100",
            ),
            # A discount product says what it takes off; no other product does.
            models.CheckConstraint(
                condition=Q(type="discount", discount_kind__in=["percent", "amount"], discount_value__gt=0)
                | (~Q(type="discount") & Q(discount_kind="", discount_value__isnull=True)),
                name="catalog_product_discount_terms",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"

    def discount_snapshot(self) -> dict[str, str] | None:
        """What a discount reward keeps of its product (orders copy it): kind, value and validity, as text."""
        if self.type != ProductType.DISCOUNT or self.discount_value is None:
            return None
        return {
            "kind": self.discount_kind,
            "value": format(self.discount_value.normalize(), "f"),
            "valid_from": self.valid_from.isoformat() if self.valid_from else "",
            "valid_until": self.valid_until.isoformat() if self.valid_until else "",
        }

    def _discount_errors(self) -> dict[str, list[str]]:
        if self.type != ProductType.DISCOUNT:
            if self.discount_kind or self.discount_value is not None:
                return {"discount_kind": ["Only discount products take a discount."]}
            return {}
        errors: dict[str, list[str]] = {}
        value = self.discount_value
        if self.discount_kind not in DiscountKind.values:
            errors["discount_kind"] = ["percent or amount."]
        if value is None or value <= 0:
            errors["discount_value"] = ["A discount takes off more than nothing."]
        elif self.discount_kind == DiscountKind.PERCENT and (value > 100 or value != value.quantize(Decimal("0.01"))):
            errors["discount_value"] = ["A percentage up to 100, with at most 2 decimal places."]
        elif self.discount_kind == DiscountKind.AMOUNT and (msgs := precision_errors(value, self.currency)):
            errors["discount_value"] = msgs
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            errors["valid_until"] = ["Ends before it starts."]
        return errors

    def clean(self) -> None:
        errors: dict[str, list[str]] = self._discount_errors()
        self.currency = (self.currency or "").strip().upper()
        self.countries = sorted({(c or "").strip().upper() for c in self.countries or []})
        if msgs := currency_errors(self.currency):
            errors["currency"] = msgs
        if not self.countries:
            errors["countries"] = ["At least one country where the product can be redeemed."]
        elif msgs := country_errors(self.countries):
            errors["countries"] = msgs
        if self.denomination_type == DenominationType.FIXED:
            values = sorted(set(self.denomination_values or []))
            if not values:
                errors["denomination_values"] = ["A fixed-denomination product needs at least one value."]
            else:
                msgs = [msg for value in values for msg in precision_errors(value, self.currency)]
                if msgs:
                    errors["denomination_values"] = msgs
            if self.denomination_min is not None or self.denomination_max is not None:
                errors["denomination_min"] = ["Only range products have a minimum and maximum."]
            self.denomination_values = values
        elif self.denomination_type == DenominationType.RANGE:
            low, high = self.denomination_min, self.denomination_max
            if low is None or high is None:
                errors["denomination_min"] = ["A range product needs a minimum and a maximum."]
            else:
                msgs = precision_errors(low, self.currency) + precision_errors(high, self.currency)
                if msgs:
                    errors["denomination_min"] = msgs
                elif low >= high:
                    errors["denomination_max"] = ["The maximum must be greater than the minimum."]
            if self.denomination_values:
                errors["denomination_values"] = ["Range products have no fixed values."]
        if self.type == ProductType.CHOICE and self.barcode_format:
            errors["barcode_format"] = ["A choice product has no code of its own."]
        if errors:
            raise ValidationError(errors)

    @property
    def denomination_range(self) -> tuple[Decimal, Decimal]:
        """A range product's (minimum, maximum)."""
        # Both are set for every range product (the catalog_product_denomination check constraint): never None.
        return cast(Decimal, self.denomination_min), cast(Decimal, self.denomination_max)

    @property
    def can_be_ordered(self) -> bool:
        """Orderable now: flagged so and its supplier active (needs `supplier` loaded)."""
        return self.is_orderable and self.supplier.is_active

    def allowed_amounts_text(self) -> str:
        """How a refusal states what would have been accepted: '10.00, 25.00 USD' or '5.00 to 500.00 USD'."""
        if self.denomination_type == DenominationType.FIXED:
            values = ", ".join(format_amount(value, self.currency) for value in self.denomination_values)
            return f"{values} {self.currency}"
        low, high = (format_amount(bound, self.currency) for bound in self.denomination_range)
        return f"{low} to {high} {self.currency}"


class ShippingMethod(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    carrier = models.CharField(max_length=100)
    countries = ArrayField(models.CharField(max_length=2), default=list)  # destinations served
    price = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    estimated_days = models.PositiveSmallIntegerField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["price", "name", "id"]
        indexes = [GinIndex(fields=["countries"], name="catalog_shipping_countries_gin")]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="catalog_shipping_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.carrier})"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        self.currency = (self.currency or "").strip().upper()
        self.countries = sorted({(c or "").strip().upper() for c in self.countries or []})
        if msgs := currency_errors(self.currency):
            errors["currency"] = msgs
        if not self.countries:
            errors["countries"] = ["At least one destination country."]
        elif msgs := country_errors(self.countries):
            errors["countries"] = msgs
        if self.price is not None and not errors.get("currency"):
            if self.price < 0 or self.price != quantize(self.price, self.currency):
                errors["price"] = [
                    f"Not a valid {self.currency} price (>= 0, at most {exponent(self.currency)} places)."
                ]
        if errors:
            raise ValidationError(errors)


class FxRate(models.Model):
    """1 `base` = `rate` `quote`, effective from `as_of`; the newest effective row is the current rate."""

    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=20, decimal_places=10)
    as_of = models.DateTimeField()

    class Meta:
        ordering = ["base", "quote", "-as_of"]
        constraints = [
            models.UniqueConstraint(fields=["base", "quote", "as_of"], name="catalog_fxrate_pair_as_of"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="catalog_fxrate_positive"),
        ]
        indexes = [models.Index(fields=["base", "quote", "-as_of"], name="catalog_fxrate_latest")]

    def __str__(self) -> str:
        return f"{self.base}/{self.quote} {self.rate} @ {self.as_of:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        self.base = (self.base or "").strip().upper()
        self.quote = (self.quote or "").strip().upper()
        for field in ("base", "quote"):
            if msgs := currency_errors(getattr(self, field)):
                errors[field] = msgs
        if self.rate is not None and self.rate <= 0:
            errors["rate"] = ["The rate must be positive."]
        if errors:
            raise ValidationError(errors)


class InventoryCodeStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    RESERVED = "reserved", "Reserved"
    ISSUED = "issued", "Issued"
    VOID = "void", "Void"


class InventoryCode(models.Model):
    """One pre-bought gift card code of an `inventory` supplier, encrypted at rest (see catalog.inventory).

    `code_hash` is a keyed hash of the normalised code, so duplicates are refused without decrypting
    anything; `reference` is the reward id the code was issued to (one code per reward, ever).
    """

    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="inventory_codes")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="inventory_codes")
    denomination = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    code_encrypted = models.TextField()
    pin_encrypted = models.TextField(blank=True, default="")
    code_hash = models.CharField(max_length=64)
    code_last4 = models.CharField(max_length=4)
    status = models.CharField(max_length=12, choices=InventoryCodeStatus.choices, default=InventoryCodeStatus.AVAILABLE)
    reference = models.CharField(max_length=64, null=True, blank=True, unique=True)
    uploaded_at = models.DateTimeField(default=timezone.now)
    issued_at = models.DateTimeField(null=True, blank=True)
    batch_label = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["product", "denomination", "id"]
        constraints = [
            models.UniqueConstraint(fields=["supplier", "code_hash"], name="catalog_inventorycode_supplier_hash"),
            # An available code belongs to nobody; an issued one to exactly one reward.
            models.CheckConstraint(
                condition=~Q(status="available") | Q(reference__isnull=True),
                name="catalog_inventorycode_available_unreferenced",
            ),
            models.CheckConstraint(
                condition=~Q(status="issued") | Q(reference__isnull=False, issued_at__isnull=False),
                name="catalog_inventorycode_issued_referenced",
            ),
            models.CheckConstraint(condition=Q(denomination__gt=0), name="catalog_inventorycode_positive"),
        ]
        indexes = [
            # The draw: oldest available code for (product, denomination); only available rows are indexed.
            models.Index(
                fields=["product", "denomination", "id"],
                condition=Q(status="available"),
                name="catalog_invcode_available",
            ),
        ]

    def __str__(self) -> str:
        return f"…{self.code_last4} ({self.denomination} {self.currency}, {self.status})"
