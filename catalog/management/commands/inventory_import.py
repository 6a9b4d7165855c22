"""`inventory_import SUPPLIER_CODE PRODUCT_ID PATH.csv [--batch LABEL]`: load pre-bought codes, all or none."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from catalog.inventory import inventory_import_csv
from catalog.models import Product, Supplier
from core.errors import ApplicationError
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Import gift card codes (CSV columns code,pin,denomination; pin optional) into an inventory supplier "
        "for one product. Nothing is imported if any row is bad; prints the number of codes imported."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("supplier_code")
        parser.add_argument("product_id")
        parser.add_argument("path")
        parser.add_argument("--batch", default="", help="A label for this upload (e.g. the purchase order).")

    def handle(self, *args, **options) -> str:
        supplier = Supplier.objects.filter(code=options["supplier_code"]).first()
        if supplier is None:
            raise ApplicationError(
                f"No supplier {options['supplier_code']!r}.", code="not_found", errors={"supplier": ["Unknown."]}
            )
        try:
            product = Product.objects.filter(pk=options["product_id"]).first()
        except ValidationError:
            product = None
        if product is None:
            raise ApplicationError(
                f"No product {options['product_id']!r}.", code="not_found", errors={"product": ["Unknown."]}
            )
        result = inventory_import_csv(
            supplier=supplier, product=product, path=options["path"], batch_label=options["batch"]
        )
        return str(result.imported)
