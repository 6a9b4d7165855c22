"""Logos served by the app: uploaded ones (catalog.images, /media/logos/<key>) and the demo catalogue's, drawn
here (the demo brands are fictional: no image exists anywhere)."""

from __future__ import annotations

from html import escape

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from .images import image_get, initials, tile_colour
from .models import Brand


@require_GET
def stored_logo(request: HttpRequest, key: str) -> HttpResponse:
    """GET /media/logos/<key>: an uploaded logo. The key is the SHA-256 of its bytes, so the answer never
    changes: cached for a year (immutable), revalidated by ETag; `nosniff` and a CSP that forbids everything
    keep a browser from treating it as anything but an image."""
    etag = f'"{key}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        image = image_get(key=key)
        if image is None:
            raise Http404("No such logo")
        response = HttpResponse(bytes(image.data), content_type=image.content_type)
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
@cache_control(public=True, max_age=86400)
def demo_brand_logo(request: HttpRequest, slug: str) -> HttpResponse:
    """GET /demo/brand-logos/<slug>.svg: the brand's initials on a colour of its own, for the demo catalogue."""
    brand = Brand.objects.filter(slug=slug).only("name").first()
    if brand is None:
        raise Http404("No such brand")
    letters = escape(initials(brand.name))
    colour = tile_colour(slug)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96" role="img" '
        f'aria-label="{escape(brand.name)}"><rect width="96" height="96" rx="20" fill="{colour}"/>'
        '<text x="48" y="60" font-family="system-ui, sans-serif" font-size="38" font-weight="700" '
        f'fill="#fff" text-anchor="middle">{letters}</text></svg>'
    )
    return HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
