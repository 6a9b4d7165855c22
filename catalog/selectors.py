"""Reads of the catalogue as one tenant sees it: its curation rules (programs.CatalogRule), a program's
allowed products, country availability, denominations, shipping methods and FX rates.

These run inside a tenant schema (the search path reaches the public catalogue tables); in the public
schema there are no rules, so everything is visible.

Visibility vs. orderability: the list and detail reads return every product the tenant's curation (and
the program) lets it see, including ones temporarily not orderable (`is_orderable` false or supplier
inactive), so integrators can show them as unavailable. `product_get_orderable` is the gate for orders.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from core.db import connection
from core.errors import ApplicationError, NotFoundError
from core.money import exponent, format_amount, quantize
from core.precompiled import Precompiled

from .models import DenominationType, FxRate, Product, ShippingMethod

if TYPE_CHECKING:
    from programs.models import Program


@dataclass(frozen=True)
class Curation:
    """The tenant's CatalogRules folded together: allow rules narrow, deny rules always win."""

    has_allow: bool = False
    allow_product_ids: frozenset[uuid.UUID] = frozenset()
    allow_brand_slugs: frozenset[str] = frozenset()
    deny_product_ids: frozenset[uuid.UUID] = frozenset()
    deny_brand_slugs: frozenset[str] = frozenset()

    def permits(self, product: Product) -> bool:
        """The same decision as `apply()`, for one product already loaded with its brand."""
        if product.id in self.deny_product_ids or product.brand.slug in self.deny_brand_slugs:
            return False
        if self.has_allow:
            return product.id in self.allow_product_ids or product.brand.slug in self.allow_brand_slugs
        return True

    def apply(self, queryset: QuerySet[Product], *, deny_only: bool = False) -> QuerySet[Product]:
        if self.has_allow and not deny_only:
            queryset = queryset.filter(
                Q(id__in=list(self.allow_product_ids)) | Q(brand__slug__in=list(self.allow_brand_slugs))
            )
        if self.deny_product_ids or self.deny_brand_slugs:
            queryset = queryset.exclude(
                Q(id__in=list(self.deny_product_ids)) | Q(brand__slug__in=list(self.deny_brand_slugs))
            )
        return queryset


# Read on every order and product page (the tenant's rules, from its own schema): compiled once per process.
_CATALOG_RULES: Precompiled[Any] = Precompiled(lambda: _catalog_rule_model().objects.all(), markers=[])


def _catalog_rule_model() -> Any:
    from programs.models import CatalogRule  # programs is a later layer than catalog

    return CatalogRule


def curation_get() -> Curation:
    """The current tenant's curation (one query); none in the public schema."""
    if connection.schema_name == get_public_schema_name():
        return Curation()
    from programs.models import CatalogRuleMode

    allow_ids: set[uuid.UUID] = set()
    allow_brands: set[str] = set()
    deny_ids: set[uuid.UUID] = set()
    deny_brands: set[str] = set()
    has_allow = False
    for rule in _CATALOG_RULES.fetch():
        if rule.mode == CatalogRuleMode.ALLOW:
            has_allow = True
            allow_ids.update(rule.product_ids)
            allow_brands.update(rule.brand_slugs)
        else:
            deny_ids.update(rule.product_ids)
            deny_brands.update(rule.brand_slugs)
    return Curation(
        has_allow=has_allow,
        allow_product_ids=frozenset(allow_ids),
        allow_brand_slugs=frozenset(allow_brands),
        deny_product_ids=frozenset(deny_ids),
        deny_brand_slugs=frozenset(deny_brands),
    )


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _choice_options_queryset(curation: Curation) -> QuerySet[Product]:
    # A recipient may pick any orderable option the tenant has not denied; allow rules and program lists
    # choose what senders may order (the choice product itself), not what it contains.
    return curation.apply(
        Product.objects.filter(is_orderable=True, supplier__is_active=True), deny_only=True
    ).select_related("brand")


def _visible_products(curation: Curation, program: Program | None) -> QuerySet[Product]:
    queryset = curation.apply(Product.objects.select_related("brand", "supplier"))
    if program is not None and program.allowed_product_ids:
        queryset = queryset.filter(id__in=program.allowed_product_ids)
    return queryset.prefetch_related(Prefetch("choice_options", queryset=_choice_options_queryset(curation)))


def product_list_for_tenant(
    *,
    country: str | None = None,
    currency: str | None = None,
    type: str | None = None,
    q: str | None = None,
    program: Program | None = None,
) -> QuerySet[Product]:
    """Products this tenant (and, if given, this program) may order, narrowed by the filters.

    Brand, supplier and the visible choice options are loaded with the products (three queries in all,
    plus one for the curation rules).
    """
    queryset = _visible_products(curation_get(), program)
    if country:
        queryset = queryset.filter(countries__contains=[country.strip().upper()])
    if currency:
        queryset = queryset.filter(currency=currency.strip().upper())
    if type:
        queryset = queryset.filter(type=type)
    if q and q.strip():
        term = q.strip()
        queryset = queryset.filter(Q(name__icontains=term) | Q(brand__name__icontains=term) | Q(sku=term.lower()))
    return queryset


def product_get_for_tenant(*, product_id: uuid.UUID | str) -> Product:
    """One product the tenant may see; NotFoundError if unknown or hidden by its curation."""
    pk = _uuid_or_none(product_id)
    product = _visible_products(curation_get(), None).filter(pk=pk).first() if pk else None
    if product is None:
        raise NotFoundError("No such product.")
    return product


def _unavailable(detail: str) -> ApplicationError:
    return ApplicationError(
        detail, code="product_unavailable", status=422, title="Product unavailable", errors={"product_id": [detail]}
    )


# Every order looks its products up by id: compiled once per process (core.precompiled; ~1.3 ms an order).
_PRODUCT_BY_ID: Precompiled[Product] = Precompiled(
    lambda pk: Product.objects.select_related("brand", "supplier").filter(pk=pk), markers=[uuid.UUID(int=0)]
)


def product_get_orderable(
    *, product_id: uuid.UUID | str, program: Program | None = None, country: str | None = None
) -> Product:
    """The product, if this tenant (and program) may order it now for delivery in `country`.

    `product_id` may be the product's SKU. Raises `product_unavailable` (422) when it is unknown, not orderable,
    curated away by the tenant, outside the program's allowed products, or not redeemable in `country`.
    """
    pk = _uuid_or_none(product_id)
    if pk:
        product = _PRODUCT_BY_ID.first(pk)
    else:  # not an id: a SKU (accepted wherever a product_id is)
        sku = str(product_id).strip().lower()
        product = Product.objects.select_related("brand", "supplier").filter(sku=sku).first()
    if product is None:
        raise _unavailable(f"Unknown product {product_id}.")
    if not product.can_be_ordered:
        raise _unavailable(f"{product.name} cannot be ordered at the moment.")
    if not curation_get().permits(product):
        raise _unavailable(f"{product.name} is not available to this account.")
    if program is not None and program.allowed_product_ids and product.id not in set(program.allowed_product_ids):
        raise _unavailable(f"{product.name} is not part of the program {program.slug!r}.")
    if country is not None and country.strip().upper() not in product.countries:
        raise _unavailable(
            f"{product.name} cannot be redeemed in {country.strip().upper()!r}; "
            f"it can in {', '.join(product.countries)}."
        )
    return product


def product_choice_options(*, product: Product) -> QuerySet[Product]:
    """What a recipient of a choice reward may pick: orderable options the tenant has not denied."""
    return _choice_options_queryset(curation_get()).filter(offered_by=product)


def product_validate_amount(*, product: Product, amount: Decimal) -> None:
    """Refuse (`amount_not_allowed`, 422) an amount the product's denominations do not offer."""
    currency = product.currency
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        value = None
    allowed = product.allowed_amounts_text()
    problem = None
    if value is None or not value.is_finite() or value <= 0:
        problem = f"{amount} is not a positive amount; {product.name} accepts {allowed}."
    elif value != quantize(value, currency):
        problem = (
            f"{currency} amounts have at most {exponent(currency)} decimal places; {product.name} accepts {allowed}."
        )
    elif product.denomination_type == DenominationType.FIXED:
        if value not in set(product.denomination_values):
            problem = f"{format_amount(value, currency)} {currency} is not offered; {product.name} comes in {allowed}."
    else:
        low, high = product.denomination_range
        if not (low <= value <= high):
            problem = f"{format_amount(value, currency)} {currency} is out of range; {product.name} accepts {allowed}."
    if problem:
        raise ApplicationError(
            problem, code="amount_not_allowed", status=422, title="Amount not allowed", errors={"amount": [problem]}
        )


def fx_rate_get(*, base: str, quote: str) -> FxRate | None:
    """The newest effective rate for 1 `base` in `quote`, or None.

    base == quote gives an unsaved identity rate (1). If only the opposite pair is stored, an unsaved
    FxRate with the inverse rate (10 places) is returned, so callers need not care which way was loaded.
    """
    base, quote = base.strip().upper(), quote.strip().upper()
    now = timezone.now()
    if base == quote:
        return FxRate(base=base, quote=quote, rate=Decimal(1), as_of=now)
    rates = {
        (fx.base, fx.quote): fx
        for fx in FxRate.objects.filter(Q(base=base, quote=quote) | Q(base=quote, quote=base), as_of__lte=now)
        .order_by("base", "quote", "-as_of")
        .distinct("base", "quote")
    }
    if (direct := rates.get((base, quote))) is not None:
        return direct
    if (inverse := rates.get((quote, base))) is not None:
        rate = (Decimal(1) / inverse.rate).quantize(Decimal("1e-10"))
        return FxRate(base=base, quote=quote, rate=rate, as_of=inverse.as_of)
    return None


def fx_rate_list(*, base: str | None = None, quote: str | None = None) -> QuerySet[FxRate]:
    """The newest effective rate of every stored pair (optionally only from `base` / into `quote`)."""
    latest = FxRate.objects.filter(as_of__lte=timezone.now())
    if base:
        latest = latest.filter(base=base.strip().upper())
    if quote:
        latest = latest.filter(quote=quote.strip().upper())
    latest_ids = latest.order_by("base", "quote", "-as_of").distinct("base", "quote").values("id")
    return FxRate.objects.filter(id__in=latest_ids).order_by("base", "quote")


def shipping_method_list(*, country: str | None = None) -> QuerySet[ShippingMethod]:
    """Active shipping methods, only those delivering to `country` when given."""
    queryset = ShippingMethod.objects.filter(is_active=True)
    if country:
        queryset = queryset.filter(countries__contains=[country.strip().upper()])
    return queryset


def shipping_method_get(*, shipping_method_id: uuid.UUID | str, country: str) -> ShippingMethod:
    """An active shipping method that delivers to `country`, or `validation_error` on shipping_method_id."""
    pk = _uuid_or_none(shipping_method_id)
    method = ShippingMethod.objects.filter(pk=pk, is_active=True).first() if pk else None
    country = (country or "").strip().upper()
    if method is None:
        message = f"Unknown shipping method {shipping_method_id}."
    elif country not in method.countries:
        message = f"{method.name} does not deliver to {country!r}; it serves {', '.join(method.countries)}."
    else:
        return method
    raise ApplicationError(message, code="validation_error", status=422, errors={"shipping_method_id": [message]})
