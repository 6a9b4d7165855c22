"""`brand_logo_set BRAND_SLUG PATH`: store a brand's logo (PNG, JPEG or WebP; catalog.images); prints its URL."""

from __future__ import annotations

from pathlib import Path

from catalog.images import LOGO_MAX_BYTES, absolute, brand_logo_set, brand_logo_src
from catalog.models import Brand
from core.errors import ApplicationError
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Store a brand's logo (PNG, JPEG or WebP, at most 512 KB and 2048 px a side); prints where it is served."

    def add_arguments(self, parser) -> None:
        parser.add_argument("brand_slug")
        parser.add_argument("path")

    def handle(self, *args, **options) -> str:
        brand = Brand.objects.filter(slug=options["brand_slug"]).first()
        if brand is None:
            raise ApplicationError(
                f"No brand {options['brand_slug']!r}.", code="not_found", errors={"brand": ["Unknown."]}
            )
        with Path(options["path"]).open("rb") as handle:
            brand_logo_set(brand=brand, data=handle.read(LOGO_MAX_BYTES + 1))
        return absolute(brand_logo_src(brand))
