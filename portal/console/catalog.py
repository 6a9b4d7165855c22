"""Operator console: the catalogue and suppliers (counts, inventory stock), inventory code uploads (CSV) and
brand logos (stored and served by the platform: catalog.images)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy, ngettext

from core.errors import ApplicationError

from .base import operator_required


class InventoryUploadForm(forms.Form):
    product = forms.ChoiceField(
        label=gettext_lazy("Product"), help_text=gettext_lazy("Only products of an inventory supplier take codes.")
    )
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy("Columns code,pin,denomination (pin optional); all rows or none."),
    )
    batch = forms.CharField(
        max_length=100,
        required=False,
        label=gettext_lazy("Batch label"),
        help_text=gettext_lazy("e.g. the purchase order."),
    )

    def __init__(self, *args, **kwargs) -> None:
        from catalog.models import Product, SupplierKind

        super().__init__(*args, **kwargs)
        products = Product.objects.filter(supplier__kind=SupplierKind.INVENTORY).select_related("supplier")
        self.fields["product"].choices = [  # type: ignore[attr-defined]  # a ChoiceField("", "Choose a product")] + [
            (str(p.pk), f"{p.name} ({p.currency}) · {p.supplier.code}") for p in products.order_by("name")
        ]


class BrandLogoForm(forms.Form):
    brand = forms.ChoiceField(label=gettext_lazy("Brand"))
    logo = forms.FileField(
        label=gettext_lazy("Logo"),
        help_text=gettext_lazy("PNG, JPEG or WebP, at most 512 KB and 2048 px a side. No SVG."),
    )

    def __init__(self, *args, **kwargs) -> None:
        from catalog.models import Brand

        super().__init__(*args, **kwargs)
        self.fields["brand"].choices = [("", gettext("Choose a brand"))] + [  # type: ignore[attr-defined]  # a ChoiceField
            (brand.slug, f"{brand.name} · {gettext('has a logo')}" if brand.logo_id else brand.name)
            for brand in Brand.objects.all()
        ]


def _brand_logo_upload(request, form: BrandLogoForm) -> bool:
    from catalog.images import LOGO_MAX_BYTES, brand_logo_set
    from catalog.models import Brand

    brand = Brand.objects.get(slug=form.cleaned_data["brand"])
    try:
        brand_logo_set(brand=brand, data=form.cleaned_data["logo"].read(LOGO_MAX_BYTES + 1))
    except ApplicationError as exc:
        form.add_error("logo", exc.detail)
        return False
    messages.success(request, gettext("Logo of %(brand)s saved.") % {"brand": brand.name})
    return True


def _inventory_upload(request, form: InventoryUploadForm) -> bool:
    """Import the uploaded CSV via catalog.inventory (all or nothing); errors land on the form."""
    import tempfile

    from catalog.inventory import inventory_import_csv
    from catalog.models import Product

    product = Product.objects.select_related("supplier").get(pk=form.cleaned_data["product"])
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        for chunk in form.cleaned_data["file"].chunks():
            handle.write(chunk)
        handle.flush()
        try:
            result = inventory_import_csv(
                supplier=product.supplier, product=product, path=handle.name, batch_label=form.cleaned_data["batch"]
            )
        except ApplicationError as exc:
            rows = exc.errors.get("rows") or []
            if rows:
                form.add_error(
                    "file",
                    gettext("%(count)s bad row(s); nothing was imported.") % {"count": len({r["row"] for r in rows})},
                )
                for row in rows[:20]:
                    form.add_error("file", gettext("Row %(row)s, %(column)s: %(message)s") % row)
                if len(rows) > 20:
                    form.add_error("file", gettext("… and %(count)s more.") % {"count": len(rows) - 20})
            else:
                field_map = {"product": "product", "supplier": "product", "path": "file", "header": "file"}
                mapped = False
                for key, errors in exc.errors.items():
                    if key in field_map:
                        for error in errors:
                            form.add_error(field_map[key], error)
                        mapped = True
                if not mapped:
                    form.add_error(None, exc.detail)
            return False
    messages.success(
        request,
        ngettext(
            "Imported %(count)s code for %(product)s.", "Imported %(count)s codes for %(product)s.", result.imported
        )
        % {"count": result.imported, "product": product.name},
    )
    return True


@operator_required
def catalog_view(request):
    from catalog.inventory import inventory_stock
    from catalog.models import Brand, Product, Supplier

    form = InventoryUploadForm()
    logo_form = BrandLogoForm()
    status = 200
    if request.method == "POST" and request.POST.get("action") == "logo":
        logo_form = BrandLogoForm(request.POST, request.FILES)
        if logo_form.is_valid() and _brand_logo_upload(request, logo_form):
            return redirect("console:catalog")
        status = 422
    elif request.method == "POST":
        form = InventoryUploadForm(request.POST, request.FILES)
        if form.is_valid() and _inventory_upload(request, form):
            return redirect("console:catalog")
        status = 422
    stock = inventory_stock()
    suppliers = []
    for supplier in Supplier.objects.order_by("code"):
        lines = [line for line in stock if line.supplier_code == supplier.code]
        suppliers.append({"supplier": supplier, "stock": lines})
    counts = {"brands": Brand.objects.count(), "products": Product.objects.count(), "suppliers": len(suppliers)}
    context = {"counts": counts, "suppliers": suppliers, "form": form, "logo_form": logo_form,
               "page_title": gettext("Catalogue and suppliers"),
               "nav_section": "catalog"}  # fmt: skip
    return render(request, "console/catalog.html", context, status=status)
