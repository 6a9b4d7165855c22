"""The demo catalogue's brand logos, drawn by the app (the demo brands are fictional: no image exists anywhere)."""

from __future__ import annotations

import hashlib
from html import escape

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .models import Brand

# Background colours with white text readable on each (WCAG AA for large text).
PALETTE = ("#4f46e5", "#0f766e", "#b45309", "#be123c", "#1d4ed8", "#7c3aed", "#047857", "#9d174d")


@require_GET
@cache_control(public=True, max_age=86400)
def demo_brand_logo(request: HttpRequest, slug: str) -> HttpResponse:
    """GET /demo/brand-logos/<slug>.svg: the brand's initials on a colour of its own, for the demo catalogue."""
    brand = Brand.objects.filter(slug=slug).only("name").first()
    if brand is None:
        raise Http404("No such brand")
    words = [word for word in brand.name.replace("&", " ").split() if word[:1].isalnum()]
    initials = escape("".join(word[0] for word in words[:2]).upper() or "?")
    colour = PALETTE[hashlib.sha256(slug.encode()).digest()[0] % len(PALETTE)]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96" role="img" '
        f'aria-label="{escape(brand.name)}"><rect width="96" height="96" rx="20" fill="{colour}"/>'
        '<text x="48" y="60" font-family="system-ui, sans-serif" font-size="38" font-weight="700" '
        f'fill="#fff" text-anchor="middle">{initials}</text></svg>'
    )
    return HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
