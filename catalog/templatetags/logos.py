"""`{% logo src name css_class size %}`: a logo served by this app, or the name's initials on a coloured tile
when there is none, so no page or email ever shows a broken image (catalog.images)."""

from __future__ import annotations

from typing import Any

from django import template

from catalog.images import brand_logo_src, logo_context

register = template.Library()


@register.inclusion_tag("catalog/_logo.html")
def logo(src: str, name: str, css_class: str = "logo", size: int = 56) -> dict[str, Any]:
    return {**logo_context(src, name), "css_class": css_class, "size": size}


@register.inclusion_tag("catalog/_logo.html")
def brand_logo(brand: Any, css_class: str = "logo", size: int = 56) -> dict[str, Any]:
    """A catalogue brand's logo (uploaded, or drawn by this app for the demo), else its lettered tile."""
    return logo(brand_logo_src(brand), brand.name if brand is not None else "", css_class, size)
