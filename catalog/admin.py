"""The operator's admin for the global catalogue (public schema).

Product edits run the same checks as `catalog.services` (model `clean()` plus the choice-option rules),
so the admin cannot store a product the API would refuse to sell.
"""

from django import forms
from django.contrib import admin
from django.db import models

from core.errors import ApplicationError

from .inventory import inventory_stock
from .models import Brand, FxRate, InventoryCode, Product, ProductType, ShippingMethod, Supplier
from .services import product_choice_options_check, product_sku_suggest


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")


class ProductInline(admin.TabularInline):
    model = Product
    fields = ("name", "type", "currency", "denomination_type", "is_orderable")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [ProductInline]
    # A logo URL typed without a scheme is https:// (Django 6's default; no deprecation warning meanwhile).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = (
            "sku",
            "brand",
            "name",
            "description",
            "type",
            "currency",
            "countries",
            "denomination_type",
            "denomination_values",
            "denomination_min",
            "denomination_max",
            "is_orderable",
            "supplier",
            "cost_discount_percent",
            "choice_options",
            "barcode_format",
            "discount_kind",
            "discount_value",
            "valid_from",
            "valid_until",
            "zero_cost",
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["sku"].required = False
        self.fields["sku"].help_text = "Leave empty to have one made from brand, first country and currency."

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("sku") and cleaned.get("brand") and cleaned.get("currency"):
            cleaned["sku"] = product_sku_suggest(
                brand=cleaned["brand"],
                currency=cleaned["currency"].strip().upper(),
                countries=list(cleaned.get("countries") or []),
                product_id=self.instance.pk if not self.instance._state.adding else None,
            )
            self.instance.sku = cleaned["sku"]
        options = list(cleaned.get("choice_options") or [])
        self.instance.type = cleaned.get("type", self.instance.type)
        self.instance.currency = (cleaned.get("currency") or "").strip().upper()
        try:
            product_choice_options_check(product=self.instance, options=options)
        except ApplicationError as exc:
            self.add_error("choice_options", exc.errors["choice_options"])
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ("name", "sku", "brand", "type", "currency", "denomination_type", "supplier", "is_orderable")
    list_filter = ("type", "currency", "denomination_type", "is_orderable", "supplier")
    search_fields = ("name", "sku", "brand__name", "id")
    list_select_related = ("brand", "supplier")
    autocomplete_fields = ("brand",)
    filter_horizontal = ("choice_options",)
    readonly_fields = ("id", "created_at")
    actions = ["make_orderable", "make_unorderable"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "choice_options":
            kwargs["queryset"] = Product.objects.exclude(type=ProductType.CHOICE).select_related("brand")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.action(description="Mark selected products orderable")
    def make_orderable(self, request, queryset) -> None:
        queryset.update(is_orderable=True)

    @admin.action(description="Mark selected products not orderable")
    def make_unorderable(self, request, queryset) -> None:
        queryset.update(is_orderable=False)


@admin.register(ShippingMethod)
class ShippingMethodAdmin(admin.ModelAdmin):
    list_display = ("name", "carrier", "price", "currency", "estimated_days", "is_active")
    list_filter = ("carrier", "currency", "is_active")
    search_fields = ("name", "carrier")
    readonly_fields = ("id", "created_at")


@admin.register(FxRate)
class FxRateAdmin(admin.ModelAdmin):
    list_display = ("base", "quote", "rate", "as_of")
    list_filter = ("base", "quote")
    date_hierarchy = "as_of"


@admin.register(InventoryCode)
class InventoryCodeAdmin(admin.ModelAdmin):
    """Read-only: codes come in through `manage.py inventory_import` (validated, encrypted, all-or-nothing)
    and go out to rewards; the admin shows them masked, with the stock per product and denomination."""

    list_display = ("masked_code", "product", "denomination", "currency", "status", "batch_label", "uploaded_at",
                    "issued_at", "reference")  # fmt: skip
    list_filter = ("status", "supplier", "currency", "batch_label")
    search_fields = ("reference", "batch_label", "code_last4", "product__name")
    list_select_related = ("product",)
    fields = ("masked_code", "supplier", "product", "denomination", "currency", "status", "reference",
              "batch_label", "uploaded_at", "issued_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="code")
    def masked_code(self, obj: InventoryCode) -> str:
        return "•" * 8 + obj.code_last4

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "stock": inventory_stock()}
        return super().changelist_view(request, extra_context=extra_context)
