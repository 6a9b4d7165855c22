"""Writes to the global catalogue (operator side): suppliers, brands, products, shipping methods, FX rates.

Every write validates through the model's `clean()` and turns Django's ValidationError into one
`validation_error` ApplicationError, so the admin, the commands and the tests refuse the same things.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify

from core.errors import ApplicationError

from .models import (
    Brand,
    DenominationType,
    FxRate,
    Product,
    ProductType,
    ShippingMethod,
    Supplier,
    SupplierKind,
    currency_errors,
)

SANDBOX_SUPPLIER_CODE = "sandbox"


def _validation_error(exc: ValidationError, *, prefix: str = "") -> ApplicationError:
    errors = {field: [str(msg) for msg in msgs] for field, msgs in exc.message_dict.items()}
    summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
    return ApplicationError(f"{prefix}{summary}", code="validation_error", errors=errors)


def _full_clean(instance: models.Model, *, exclude: Iterable[str] = (), unique: bool = True) -> None:
    try:
        instance.full_clean(exclude=list(exclude), validate_unique=unique, validate_constraints=unique)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _decimal(value: Any, *, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        amount = None
    if amount is None or not amount.is_finite():
        raise ApplicationError(
            f"{field}: {value!r} is not a decimal.", code="validation_error", errors={field: ["Not a decimal."]}
        )
    return amount


def supplier_upsert(
    *, code: str, name: str, kind: str, config: dict[str, Any] | None = None, is_active: bool = True
) -> Supplier:
    if kind not in SupplierKind.values:
        raise ApplicationError(
            f"Unknown supplier kind {kind!r}.",
            code="validation_error",
            errors={"kind": [f"One of {', '.join(SupplierKind.values)}."]},
        )
    supplier = Supplier.objects.filter(code=code).first() or Supplier(code=code)
    supplier.name, supplier.kind, supplier.config, supplier.is_active = name, kind, config or {}, is_active
    _full_clean(supplier, exclude=["code"] if supplier.pk else ())
    supplier.save()
    return supplier


def supplier_default_get() -> Supplier:
    """The built-in sandbox supplier: products without an explicit supplier are issued by it."""
    supplier = Supplier.objects.filter(code=SANDBOX_SUPPLIER_CODE).first()
    return supplier or supplier_upsert(code=SANDBOX_SUPPLIER_CODE, name="Sandbox supplier", kind=SupplierKind.SANDBOX)


def brand_upsert(
    *,
    slug: str,
    name: str,
    logo_url: str = "",
    description: str = "",
    terms: str = "",
    redemption_instructions: str = "",
    redemption_url: str = "",
) -> Brand:
    brand = Brand.objects.filter(slug=slug).first() or Brand(slug=slug)
    brand.name, brand.logo_url, brand.description = name.strip(), logo_url, description
    brand.terms, brand.redemption_instructions = terms, redemption_instructions
    brand.redemption_url = redemption_url
    _full_clean(brand, exclude=["slug"] if brand.pk else ())
    brand.save()
    return brand


@dataclass
class _ProductFields:
    brand: Brand
    name: str
    type: str
    currency: str
    countries: list[str]
    denomination_type: str
    denomination_values: list[Decimal]
    denomination_min: Decimal | None
    denomination_max: Decimal | None
    supplier: Supplier
    is_orderable: bool
    cost_discount_percent: Decimal
    barcode_format: str
    description: str
    sku: str
    discount_kind: str = ""
    discount_value: Decimal | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    zero_cost: bool = False


def _apply(product: Product, fields: _ProductFields) -> None:
    for name, value in fields.__dict__.items():
        setattr(product, name, value)


def product_choice_options_check(*, product: Product, options: list[Product]) -> None:
    errors = []
    if product.type == ProductType.CHOICE and not options:
        errors.append("A choice product needs at least one option.")
    if product.type != ProductType.CHOICE and options:
        errors.append("Only choice products have options.")
    for option in options:
        if option.pk == product.pk or option.type == ProductType.CHOICE:
            errors.append(f"{option.name} is a choice product itself.")
        elif option.currency != product.currency:
            errors.append(f"{option.name} is in {option.currency}, not {product.currency}.")
    if errors:
        raise ApplicationError(" ".join(errors), code="validation_error", errors={"choice_options": errors})


def _product_save(*, product: Product, fields: _ProductFields, choice_options: list[Product] | None) -> Product:
    _apply(product, fields)
    _full_clean(product, exclude=["choice_options"])
    options = list(choice_options) if choice_options is not None else None
    if options is None and product.type == ProductType.CHOICE:
        options = list(product.choice_options.all()) if product._state.adding is False else []
    if options is not None:
        product_choice_options_check(product=product, options=options)
    with transaction.atomic():
        product.save()
        if options is not None:
            product.choice_options.set(options)
    return product


def _product_fields(
    *,
    brand: Brand,
    name: str,
    type: str,
    currency: str,
    countries: list[str],
    denomination_type: str,
    denomination_values: Iterable[Any] | None,
    denomination_min: Any,
    denomination_max: Any,
    supplier: Supplier | None,
    is_orderable: bool,
    cost_discount_percent: Any,
    barcode_format: str,
    description: str,
    sku: str = "",
    product_id: uuid.UUID | None = None,
) -> _ProductFields:
    if type not in ProductType.values:
        raise ApplicationError(
            f"Unknown product type {type!r}.",
            code="validation_error",
            errors={"type": [f"One of {', '.join(ProductType.values)}."]},
        )
    if denomination_type not in DenominationType.values:
        raise ApplicationError(
            f"Unknown denomination type {denomination_type!r}.",
            code="validation_error",
            errors={"denomination_type": ["fixed or range."]},
        )
    values = [_decimal(value, field="denomination_values") for value in denomination_values or []]
    return _ProductFields(
        brand=brand,
        name=name.strip(),
        type=type,
        currency=currency,
        countries=list(countries),
        denomination_type=denomination_type,
        denomination_values=[value for value in values if value is not None],
        denomination_min=_decimal(denomination_min, field="denomination_min"),
        denomination_max=_decimal(denomination_max, field="denomination_max"),
        supplier=supplier or supplier_default_get(),
        is_orderable=is_orderable,
        cost_discount_percent=_decimal(cost_discount_percent, field="cost_discount_percent") or Decimal("0"),
        barcode_format=barcode_format,
        description=description,
        sku=_sku_checked(sku, product_id=product_id)
        or product_sku_suggest(brand=brand, currency=currency, countries=list(countries), product_id=product_id),
    )


SKU_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _sku_checked(sku: str, *, product_id: uuid.UUID | None) -> str:
    """`sku` normalised (lower case, trimmed), or "" for none; refused when malformed or another product's."""
    value = (sku or "").strip().lower()
    if not value:
        return ""
    if len(value) > 64 or not SKU_RE.fullmatch(value):
        raise ApplicationError(
            f"SKU {sku[:70]!r} is not valid: use lower-case letters, digits and single hyphens, at most 64.",
            code="validation_error",
            errors={"sku": ["Lower-case letters, digits and hyphens, e.g. amazon-us-usd."]},
        )
    others = Product.objects.filter(sku=value)
    if product_id is not None:
        others = others.exclude(pk=product_id)
    if others.exists():
        raise ApplicationError(
            f"SKU {value!r} is already another product's.", code="validation_error", errors={"sku": ["Taken."]}
        )
    return value


def product_sku_suggest(
    *, brand: Brand, currency: str, countries: list[str], product_id: uuid.UUID | None = None
) -> str:
    """A free SKU from brand, first country and currency ("amazon-us-usd"), numbered when taken ("…-2")."""
    base = slugify(f"{brand.slug}-{countries[0] if countries else 'intl'}-{currency}")[:58].strip("-") or "product"
    similar = Product.objects.filter(sku__startswith=base)
    if product_id is not None:
        similar = similar.exclude(pk=product_id)
    taken = set(similar.values_list("sku", flat=True))
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def product_create(
    *,
    brand: Brand,
    name: str,
    currency: str,
    countries: list[str],
    denomination_type: str,
    type: str = ProductType.DIGITAL,
    denomination_values: Iterable[Any] | None = None,
    denomination_min: Any = None,
    denomination_max: Any = None,
    supplier: Supplier | None = None,
    is_orderable: bool = True,
    cost_discount_percent: Any = Decimal("0"),
    barcode_format: str = "",
    description: str = "",
    choice_options: list[Product] | None = None,
    product_id: uuid.UUID | None = None,
    sku: str = "",
    discount_kind: str = "",
    discount_value: Any = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    zero_cost: bool = False,
) -> Product:
    """A new catalogue product; `product_id` fixes its id (the demo loader uses stable ids); `sku` is chosen from
    brand, country and currency when not given. A `discount` product names its kind (percent or amount), value
    and optional validity dates, and may be `zero_cost` (merchant-funded: sending it charges the tenant nothing)."""
    fields = _product_fields(
        brand=brand,
        name=name,
        type=type,
        currency=currency,
        countries=countries,
        denomination_type=denomination_type,
        denomination_values=denomination_values,
        denomination_min=denomination_min,
        denomination_max=denomination_max,
        supplier=supplier,
        is_orderable=is_orderable,
        cost_discount_percent=cost_discount_percent,
        barcode_format=barcode_format,
        description=description,
        sku=sku,
        product_id=product_id,
    )
    fields.discount_kind = discount_kind
    fields.discount_value = _decimal(discount_value, field="discount_value")
    fields.valid_from, fields.valid_until = valid_from, valid_until
    fields.zero_cost = bool(zero_cost)
    product = Product(id=product_id or uuid.uuid4())
    return _product_save(product=product, fields=fields, choice_options=choice_options or [])


def product_update(
    *,
    product: Product,
    brand: Brand,
    name: str,
    currency: str,
    countries: list[str],
    denomination_type: str,
    type: str = ProductType.DIGITAL,
    denomination_values: Iterable[Any] | None = None,
    denomination_min: Any = None,
    denomination_max: Any = None,
    supplier: Supplier | None = None,
    is_orderable: bool = True,
    cost_discount_percent: Any = Decimal("0"),
    barcode_format: str = "",
    description: str = "",
    choice_options: list[Product] | None = None,
    sku: str = "",
) -> Product:
    """Replace a product's fields; `choice_options=None` keeps its current options, `sku=""` its SKU."""
    fields = _product_fields(
        brand=brand,
        name=name,
        type=type,
        currency=currency,
        countries=countries,
        denomination_type=denomination_type,
        denomination_values=denomination_values,
        denomination_min=denomination_min,
        denomination_max=denomination_max,
        supplier=supplier,
        is_orderable=is_orderable,
        cost_discount_percent=cost_discount_percent,
        barcode_format=barcode_format,
        description=description,
        sku=sku or product.sku,
        product_id=product.pk,
    )
    # What a discount takes off is not one of the replaced fields (the admin's form edits it on the model).
    fields.discount_kind, fields.discount_value = product.discount_kind, product.discount_value
    fields.valid_from, fields.valid_until = product.valid_from, product.valid_until
    fields.zero_cost = product.zero_cost
    return _product_save(product=product, fields=fields, choice_options=choice_options)


def product_set_orderable(*, product: Product, is_orderable: bool) -> Product:
    Product.objects.filter(pk=product.pk).update(is_orderable=is_orderable)
    product.is_orderable = is_orderable
    return product


def shipping_method_upsert(
    *,
    name: str,
    carrier: str,
    countries: list[str],
    price: Any,
    currency: str,
    estimated_days: int,
    is_active: bool = True,
    shipping_method_id: uuid.UUID | None = None,
) -> ShippingMethod:
    method = None
    if shipping_method_id is not None:
        method = ShippingMethod.objects.filter(pk=shipping_method_id).first()
    method = method or ShippingMethod(id=shipping_method_id or uuid.uuid4())
    method.name, method.carrier, method.countries = name.strip(), carrier.strip(), list(countries)
    # A missing price (None) is refused by full_clean below, as a field error.
    method.price, method.currency = _decimal(price, field="price"), currency  # type: ignore[assignment]
    method.estimated_days, method.is_active = estimated_days, is_active
    _full_clean(method)
    method.save()
    return method


def fx_rate_create(*, base: str, quote: str, rate: Any, as_of: datetime | None = None) -> FxRate:
    """Record a rate (idempotent for the same pair and instant: the rate is replaced)."""
    # A missing rate (None) is refused by full_clean below, as a field error.
    fx = FxRate(base=base, quote=quote, rate=_decimal(rate, field="rate"), as_of=as_of or timezone.now())  # type: ignore[misc]
    _full_clean(fx, exclude=["as_of"] if as_of is None else (), unique=False)  # an existing pair+instant is replaced
    if fx.base == fx.quote:
        raise ApplicationError(
            "A rate needs two different currencies.", code="validation_error", errors={"quote": ["Same as base."]}
        )
    saved, _ = FxRate.objects.update_or_create(base=fx.base, quote=fx.quote, as_of=fx.as_of, defaults={"rate": fx.rate})
    return saved


FX_CSV_COLUMNS = ("base", "quote", "rate", "as_of")


def _parse_as_of(value: str) -> datetime | None:
    value = (value or "").strip()
    moment = parse_datetime(value)
    if moment is None and (day := parse_date(value)) is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def fx_rates_load(*, path: str | Path) -> int:
    """Load base,quote,rate,as_of rows from a CSV file: all of them, or none if any row is bad.

    Every bad row is reported (row numbers count the header as row 1, as spreadsheets do).
    Returns the number of rates written.
    """
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ApplicationError(
            f"Cannot read {path}: {exc.strerror}.", code="validation_error", errors={"path": [str(exc)]}
        ) from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in FX_CSV_COLUMNS if name not in header]
        if missing:
            raise ApplicationError(
                f"Missing column(s): {', '.join(missing)} (expected {','.join(FX_CSV_COLUMNS)}).",
                code="validation_error",
                errors={"header": [f"Missing {name}." for name in missing]},
            )
        reader.fieldnames = header
        rows: list[tuple[str, str, Decimal, datetime]] = []
        problems: dict[str, list[str]] = {}
        seen: dict[tuple[str, str, datetime], int] = {}
        for number, row in enumerate(reader, start=2):
            row_problems = []
            base = (row.get("base") or "").strip().upper()
            quote = (row.get("quote") or "").strip().upper()
            row_problems += [f"base: {msg}" for msg in currency_errors(base)]
            row_problems += [f"quote: {msg}" for msg in currency_errors(quote)]
            if base and base == quote:
                row_problems.append("base and quote are the same currency.")
            try:
                rate = Decimal((row.get("rate") or "").strip())
                if not rate.is_finite() or rate <= 0:
                    raise InvalidOperation
                if rate != rate.quantize(Decimal("1e-10")) or rate >= Decimal("1e10"):
                    row_problems.append(f"rate: {rate} has more than 10 decimal places or is too large.")
            except (InvalidOperation, ValueError):
                rate = None
                row_problems.append(f"rate: {row.get('rate')!r} is not a positive decimal.")
            as_of = _parse_as_of(row.get("as_of") or "")
            if as_of is None:
                row_problems.append(f"as_of: {row.get('as_of')!r} is not an ISO 8601 date or date-time.")
            if not row_problems and rate is not None and as_of is not None:  # a None has its problem listed
                key = (base, quote, as_of)
                if key in seen:
                    row_problems.append(f"duplicates row {seen[key]} ({base}/{quote} at {as_of.isoformat()}).")
                seen[key] = number
            if row_problems or rate is None or as_of is None:
                problems[f"row {number}"] = row_problems
            else:
                rows.append((base, quote, rate, as_of))
    if problems:
        lines = [f"{row}: {'; '.join(msgs)}" for row, msgs in problems.items()]
        raise ApplicationError(
            f"{len(problems)} bad row(s); nothing was loaded.\n" + "\n".join(lines),
            code="validation_error",
            errors=problems,
        )
    if not rows:
        raise ApplicationError("The file has no rates.", code="validation_error", errors={"path": ["No rows."]})
    with transaction.atomic():
        for base, quote, rate, as_of in rows:
            FxRate.objects.update_or_create(base=base, quote=quote, as_of=as_of, defaults={"rate": rate})
    return len(rows)
