"""On a tenant's portal host: the page's language (the staff member's, else the company's default, else the
browser's) and time zone (the company's), so templates show and forms read times and numbers the way the
company works. Django's forms turn a typed "09:00" into that zone's 9:00 (DST-correct, zoneinfo) and refuse a
time the zone skips; `|date` and `{{ value }}` show times in it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from core.i18n import locale_choose, locale_from_accept_language
from core.zones import zone_get
from tenants.models import Tenant


def portal_language(request: HttpRequest, tenant: Tenant) -> str:
    user = getattr(request, "user", None)
    chosen = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
    return (
        locale_choose(
            chosen, tenant.default_locale, locale_from_accept_language(request.headers.get("Accept-Language", ""))
        )
        or settings.LANGUAGE_CODE
    )


class PortalLocaleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        # The API speaks English with offsets; claim pages choose their own language (fulfillment.views_claim).
        if not isinstance(tenant, Tenant) or getattr(request, "api_key", None) is not None:
            return self.get_response(request)
        if request.path.startswith(("/r/", "/api/")):
            return self.get_response(request)
        language = portal_language(request, tenant)
        with translation.override(language), timezone.override(zone_get(tenant.timezone)):
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response
