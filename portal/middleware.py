"""On a tenant's portal host: the page's language (the staff member's, else the company's default, else the
browser's) and time zone (the company's), so templates show and forms read times and numbers the way the
company works. Django's forms turn a typed "09:00" into that zone's 9:00 (DST-correct, zoneinfo) and refuse a
time the zone skips; `|date` and `{{ value }}` show times in it. The operator console (public host) reads in the
operator's own language, else their browser's, with times in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from core.i18n import locale_choose, locale_from_accept_language
from core.zones import zone_get
from tenants.models import Tenant


def _chosen_language(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return getattr(user, "language", "") if user is not None and user.is_authenticated else ""


def portal_language(request: HttpRequest, tenant: Tenant | None) -> str:
    """The signed-in person's choice, else the company's default (none for the operator console), else the
    browser's, else the platform's."""
    return (
        locale_choose(
            _chosen_language(request),
            tenant.default_locale if tenant is not None else "",
            locale_from_accept_language(request.headers.get("Accept-Language", "")),
        )
        or settings.LANGUAGE_CODE
    )


class PortalLocaleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        # The API speaks English with offsets; claim pages choose their own language (fulfillment.views_claim).
        if getattr(request, "api_key", None) is not None:
            return self.get_response(request)
        if not isinstance(tenant, Tenant):
            if not request.path.startswith("/console/"):
                return self.get_response(request)
            # The operator console (public host): the operator's own choice, else their browser's; times in UTC.
            tenant = None
        if request.path.startswith(("/r/", "/api/")):
            return self.get_response(request)
        language = portal_language(request, tenant)
        with translation.override(language), timezone.override(zone_get(tenant.timezone) if tenant else UTC):
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response
