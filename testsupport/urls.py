"""The public API's routes, found by walking the URL configuration, so a test covers an endpoint the day it is added."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class UrlRoute:
    route: str  # the pattern text, e.g. "api/v1/orders/<uuid:order_id>"
    pattern: URLPattern
    view_class: type | None  # the class-based view (Django's view_class, DRF's cls); None for a function view


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def api_v1_routes() -> list[UrlRoute]:
    """Every route under /api/v1/ in the current URL configuration."""
    return [
        UrlRoute(
            route, pattern, getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
        )
        for route, pattern in _walk(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    ]
