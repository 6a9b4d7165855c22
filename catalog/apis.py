"""GET /api/v1/products, /products/{id}, /shipping-methods and /fx-rates: the catalogue as a tenant sees it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from api.pagination import CursorPagination
from api.views import TenantAPIView, TenantListAPIView, TenantRetrieveAPIView
from core.money import format_amount
from programs.selectors import program_get

from .images import LOGO_MAX_BYTES, absolute, image_store, logo_path
from .models import DenominationType, FxRate, Product, ProductType, ShippingMethod
from .selectors import fx_rate_list, product_get_for_tenant, product_list_for_tenant, shipping_method_list

COUNTRY_RE, CURRENCY_RE = r"^[A-Za-z]{2}$", r"^[A-Za-z]{3}$"  # also documented on the query parameters
COUNTRY_FIELD: dict[str, Any] = {
    "regex": COUNTRY_RE,
    "error_messages": {"invalid": "Use an ISO 3166 alpha-2 code like US."},
}
CURRENCY_FIELD: dict[str, Any] = {"regex": CURRENCY_RE, "error_messages": {"invalid": "Use an ISO 4217 code like USD."}}


def format_rate(rate: Decimal) -> str:
    """A rate without trailing zeros and never in exponent notation ("0.92", "151.3")."""
    return format(rate.normalize(), "f")


# --- Inputs (query parameters) ---------------------------------------------------------------------------


class ProductFilterInput(serializers.Serializer):
    country = serializers.RegexField(required=False, **COUNTRY_FIELD)
    currency = serializers.RegexField(required=False, **CURRENCY_FIELD)
    type = serializers.ChoiceField(choices=ProductType.values, required=False)
    q = serializers.CharField(required=False, max_length=100, trim_whitespace=True)
    program = serializers.SlugField(required=False, max_length=60)


class ShippingMethodFilterInput(serializers.Serializer):
    country = serializers.RegexField(required=False, **COUNTRY_FIELD)


class FxRateFilterInput(serializers.Serializer):
    base = serializers.RegexField(required=False, **CURRENCY_FIELD)
    quote = serializers.RegexField(required=False, **CURRENCY_FIELD)


# --- Outputs ---------------------------------------------------------------------------------------------


class BrandSummaryOutput(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField()
    logo_url = serializers.CharField()


class DenominationsOutput(serializers.Serializer):
    """`{"type": "fixed", "values": [...]}` or `{"type": "range", "min": ..., "max": ...}`."""

    type = serializers.ChoiceField(choices=DenominationType.values)
    values = serializers.ListField(child=serializers.CharField(), required=False)
    min = serializers.CharField(required=False)
    max = serializers.CharField(required=False)

    def to_representation(self, product: Product) -> dict:
        if product.denomination_type == DenominationType.FIXED:
            values = [format_amount(value, product.currency) for value in product.denomination_values]
            return {"type": "fixed", "values": values}
        low, high = product.denomination_range
        return {
            "type": "range",
            "min": format_amount(low, product.currency),
            "max": format_amount(high, product.currency),
        }


class ProductOutput(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(help_text="Stable human reference, accepted wherever a product_id is")
    brand = BrandSummaryOutput()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=ProductType.values)
    currency = serializers.CharField()
    countries = serializers.ListField(child=serializers.CharField())
    denominations = DenominationsOutput(source="*")
    is_orderable = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()
    terms = serializers.CharField(source="brand.terms")
    redemption_instructions = serializers.CharField(source="brand.redemption_instructions")
    choice_options = serializers.SerializerMethodField()
    discount = serializers.SerializerMethodField()
    zero_cost = serializers.BooleanField(
        help_text="true: a discount the merchant funds; sending it charges nothing (the order's total and the "
        "reward's charge are 0.00, no funds are held) and `denominations` are its face value. "
        "Not redeemable with points."
    )

    @extend_schema_field(
        inline_serializer(
            "ProductDiscount",
            {
                "kind": serializers.ChoiceField(choices=["percent", "amount"]),
                "value": serializers.CharField(help_text="percent, or an amount in the product's currency"),
                "valid_from": serializers.CharField(help_text="YYYY-MM-DD, or empty"),
                "valid_until": serializers.CharField(help_text="YYYY-MM-DD, or empty"),
            },
            allow_null=True,
        )
    )
    def get_discount(self, product: Product) -> dict[str, str] | None:
        """What a `discount` product takes off at the merchant (the brand); null for every other type."""
        return product.discount_snapshot()

    def get_is_orderable(self, product: Product) -> bool:
        return product.can_be_ordered

    def get_description(self, product: Product) -> str:
        return product.description or product.brand.description

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_choice_options(self, product: Product) -> list[str]:
        # Prefetched by the selector (deny-curated, orderable options only); empty for non-choice products.
        if product.type != ProductType.CHOICE:
            return []
        return [str(option.id) for option in product.choice_options.all()]


class ShippingMethodOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    carrier = serializers.CharField()
    countries = serializers.ListField(child=serializers.CharField())
    price = serializers.SerializerMethodField()
    currency = serializers.CharField()
    estimated_days = serializers.IntegerField()

    def get_price(self, method: ShippingMethod) -> str:
        return format_amount(method.price, method.currency)


class FxRateOutput(serializers.Serializer):
    base = serializers.CharField()
    quote = serializers.CharField()
    rate = serializers.SerializerMethodField()
    as_of = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_rate(self, fx: FxRate) -> str:
        return format_rate(fx.rate)


# --- Views -----------------------------------------------------------------------------------------------

PRODUCT_EXAMPLE = {
    "id": "6c1f3b0e-8d2a-5b7c-9e41-2f0a6d3c8b15",
    "sku": "northwind-books-us-usd",
    "brand": {"name": "Northwind Books", "slug": "northwind-books", "logo_url": "https://example.com/nw.png"},
    "name": "Northwind Books eGift (US)",
    "type": "digital",
    "currency": "USD",
    "countries": ["US"],
    "denominations": {"type": "fixed", "values": ["10.00", "25.00", "50.00"]},
    "is_orderable": True,
    "description": "Paperbacks, hardcovers and e-books.",
    "terms": "No cash value. Not reloadable.",
    "redemption_instructions": "Enter the code at checkout.",
    "choice_options": [],
    "discount": None,
    "zero_cost": False,
}
RANGE_PRODUCT_EXAMPLE = {
    **PRODUCT_EXAMPLE,
    "id": "0b7d3c52-3f8e-5a11-8c2d-9e4b7a6f1d03",
    "sku": "northwind-books-gb-gbp",
    "name": "Northwind Books eGift (UK)",
    "currency": "GBP",
    "countries": ["GB"],
    "denominations": {"type": "range", "min": "5.00", "max": "500.00"},
}
DISCOUNT_PRODUCT_EXAMPLE = {
    **PRODUCT_EXAMPLE,
    "id": "4a2e9c71-5b3d-5e08-9f6a-1c7d2b8e4f90",
    "sku": "kedai-kopi-my-myr",
    "brand": {"name": "Kedai Kopi", "slug": "kedai-kopi", "logo_url": None},
    "name": "Kedai Kopi 20% off",
    "type": "discount",
    "currency": "MYR",
    "countries": ["MY"],
    "denominations": {"type": "fixed", "values": ["10.00"]},
    "discount": {"kind": "percent", "value": "20", "valid_from": "", "valid_until": "2026-12-31"},
    "zero_cost": True,
}


class ProductCursorPagination(CursorPagination):
    ordering = ("name", "id")


class ProductListApi(TenantListAPIView):
    serializer_class = ProductOutput
    pagination_class = ProductCursorPagination

    @extend_schema(
        operation_id="products_list",
        summary="Products this tenant may order",
        description=(
            "The global catalogue after the tenant's curation (allow/deny rules) and, with `program`, that "
            "program's allowed products. Products temporarily unavailable are listed with `is_orderable: false`."
        ),
        parameters=[
            OpenApiParameter("country", str, description="ISO 3166 alpha-2: redeemable there", pattern=COUNTRY_RE),
            OpenApiParameter("currency", str, description="ISO 4217", pattern=CURRENCY_RE),
            OpenApiParameter("type", str, enum=ProductType.values),
            OpenApiParameter(
                "q", {"type": "string", "maxLength": 100}, description="Search in product and brand names"
            ),
            OpenApiParameter(
                "program",
                {"type": "string", "maxLength": 60, "pattern": r"^[-a-zA-Z0-9_]+$"},
                description="Program slug: only its allowed products",
            ),
        ],
        examples=[
            OpenApiExample(
                "A page of products",
                value={
                    "next": None,
                    "previous": None,
                    "results": [PRODUCT_EXAMPLE, RANGE_PRODUCT_EXAMPLE, DISCOUNT_PRODUCT_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = ProductFilterInput(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        program = program_get(slug=params.pop("program")) if params.get("program") else None
        return product_list_for_tenant(**params, program=program)


class ProductDetailApi(TenantRetrieveAPIView):
    serializer_class = ProductOutput

    @extend_schema(
        operation_id="products_retrieve",
        summary="One product",
        examples=[
            OpenApiExample("A fixed-denomination product", value=PRODUCT_EXAMPLE, response_only=True),
            OpenApiExample("A discount voucher", value=DISCOUNT_PRODUCT_EXAMPLE, response_only=True),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self) -> Product:
        return product_get_for_tenant(product_id=self.kwargs["product_id"])


class ShippingMethodCursorPagination(CursorPagination):
    ordering = ("price", "id")


class ShippingMethodListApi(TenantListAPIView):
    serializer_class = ShippingMethodOutput
    pagination_class = ShippingMethodCursorPagination

    @extend_schema(
        operation_id="shipping_methods_list",
        summary="Shipping methods for physical rewards",
        parameters=[OpenApiParameter("country", str, description="Only methods delivering there", pattern=COUNTRY_RE)],
        examples=[
            OpenApiExample(
                "Shipping methods to Germany",
                value={
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": "3d5c7a1e-0b4f-5e2a-9c6d-8f1b2a3c4d5e",
                            "name": "Standard (DE)",
                            "carrier": "Rheinpost",
                            "countries": ["AT", "DE"],
                            "price": "4.90",
                            "currency": "EUR",
                            "estimated_days": 3,
                        }
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = ShippingMethodFilterInput(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return shipping_method_list(**filters.validated_data)


class FxRateCursorPagination(CursorPagination):
    ordering = ("quote", "base")


class FxRateListApi(TenantListAPIView):
    serializer_class = FxRateOutput
    pagination_class = FxRateCursorPagination

    @extend_schema(
        operation_id="fx_rates_list",
        summary="Current FX rates (1 base = rate quote)",
        parameters=[
            OpenApiParameter("base", str, pattern=CURRENCY_RE),
            OpenApiParameter("quote", str, pattern=CURRENCY_RE),
        ],
        examples=[
            OpenApiExample(
                "Rates from USD",
                value={
                    "next": None,
                    "previous": None,
                    "results": [
                        {"base": "USD", "quote": "EUR", "rate": "0.92", "as_of": "2025-01-01T00:00:00Z"},
                        {"base": "USD", "quote": "GBP", "rate": "0.79", "as_of": "2025-01-01T00:00:00Z"},
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = FxRateFilterInput(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return fx_rate_list(**filters.validated_data)


# --- logos ----------------------------------------------------------------------------------------------


class LogoUploadInput(serializers.Serializer):
    file = serializers.FileField(help_text="PNG, JPEG or WebP, at most 512 KB and 2048 px a side (no SVG)")


class LogoOutput(serializers.Serializer):
    id = serializers.CharField(help_text="Use as a program's `branding.logo`")
    url = serializers.CharField(help_text="Where the platform serves it (cached for a year)")
    content_type = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()


LOGO_EXAMPLE = {
    "id": "9f2c0d1e4b7a8c3f5e6d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e.png",
    "url": "https://rewards.example/media/logos/9f2c0d1e4b7a8c3f5e6d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e.png",
    "content_type": "image/png",
    "width": 512,
    "height": 128,
}


class LogoUploadApi(TenantAPIView):
    """POST /api/v1/logos: upload a logo for a program's branding; the platform stores and serves it."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="logos_create",
        summary="Upload a logo (then set it as a program's branding.logo)",
        description="Refused with 422 `invalid_image`: SVG (it can carry scripts), other formats, files over "
        "512 KB or 2048 px a side, and files that do not decode. The same bytes uploaded twice give the same id.",
        request={"multipart/form-data": LogoUploadInput},
        responses={201: LogoOutput, 422: OpenApiResponse(description="invalid_image")},
        examples=[OpenApiExample("Stored", value=LOGO_EXAMPLE, response_only=True, status_codes=["201"])],
    )
    def post(self, request):
        serializer = LogoUploadInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = image_store(data=serializer.validated_data["file"].read(LOGO_MAX_BYTES + 1))
        body = {"id": image.key, "url": absolute(logo_path(image.key)), "content_type": image.content_type,
                "width": image.width, "height": image.height}  # fmt: skip
        return Response(body, status=201)
