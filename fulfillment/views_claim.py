"""The recipient claim pages under /r/<token> (rules and the reveal policy: fulfillment/claim_page.py).

Each view: rate limit by client address (dead links are counted apart, more strictly:
see claim_links.claim_rate_limit), find the tenant from the token, call one claim_page service inside
that tenant's schema, render. Every dead link gets the same 404 page; responses are never cached.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_tenants.utils import tenant_context

from core import context
from core.i18n import locale_choose, locale_from_accept_language, locale_normalize
from orders.addresses import STATE_CHOICES
from tenants.middleware import client_ip

from .claim_links import ClaimNotFound, claim_failure_record, claim_rate_limit, claim_tenant_get
from .claim_page import (
    ADDRESS_FIELDS,
    ClaimPage,
    claim_address_confirm,
    claim_choose,
    claim_locale,
    claim_open,
    claim_reveal,
    claim_verify,
    claim_verify_send,
)

BINDING_COOKIE = "rp_claim"
# Named after the module the claim page once lived in; a new salt would unbind every browser bound so far.
BINDING_SALT = "fulfillment.claims.binding"
# The language the recipient picked with the switch (?lang=), kept for this link's later pages and posts.
LANGUAGE_COOKIE = "rp_lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
ADDRESS_LABELS = {
    "name": _("Full name"),
    "line1": _("Address line 1"),
    "line2": _("Address line 2 (optional)"),
    "city": _("City"),
    "state": _("State / province / region"),
    "postal_code": _("Postal code"),
    "country": _("Country (2-letter code)"),
}
ADDRESS_AUTOCOMPLETE = {
    "name": "name",
    "line1": "address-line1",
    "line2": "address-line2",
    "city": "address-level2",
    "state": "address-level1",
    "postal_code": "postal-code",
    "country": "country",
}


def _language(request: HttpRequest, reward_locale: str = "") -> str:
    """The switch (?lang=, then its cookie), else the reward's language, else the browser's, else English."""
    return (
        locale_choose(
            request.GET.get("lang"),
            request.COOKIES.get(LANGUAGE_COOKIE),
            reward_locale,
            locale_from_accept_language(request.headers.get("Accept-Language", "")),
        )
        or settings.LANGUAGE_CODE
    )


def _localised(request: HttpRequest, response: HttpResponse, language: str) -> HttpResponse:
    response["Content-Language"] = language
    response["Vary"] = "Accept-Language, Cookie"
    if locale_normalize(request.GET.get("lang")):
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            path="/r/",
            secure=request.is_secure(),
            httponly=True,
            samesite="Lax",
        )
    return response


def _not_found(request: HttpRequest, language: str, dead: ClaimNotFound | None = None) -> HttpResponse:
    """A dead link's page: no token in it, not even in the language switch's links. An unknown or malformed
    token gets the same bytes every time; a real link that is over names who sent it (ClaimNotFound)."""
    context = {"company": dead.company, "sender": dead.sender, "expired_at": dead.expired_at} if dead else {}
    with translation.override(language):
        response = render(request, "claim/not_found.html", context, status=404)
    return _localised(request, _private(response), language)


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _binding(request: HttpRequest) -> str | None:
    return request.get_signed_cookie(BINDING_COOKIE, default=None, salt=BINDING_SALT)


def _bind(response: HttpResponse, *, request: HttpRequest, token: str, page: ClaimPage) -> None:
    """After a reveal (or a verification): a signed, HttpOnly cookie, sent back only to this link's pages, says
    this browser has seen the code, so reopening the link shows it again and verification is not asked twice."""
    expires: datetime | None = page.expires_at
    max_age = int((expires - timezone.now()).total_seconds()) if expires else 0
    response.set_signed_cookie(
        BINDING_COOKIE,
        page.binding,
        salt=BINDING_SALT,
        max_age=max(max_age, 60),
        path=f"/r/{token}",
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )


def _claim(request: HttpRequest, token: str, action: Callable[[], ClaimPage]) -> HttpResponse:
    address = client_ip(request)
    allowed, retry_after = claim_rate_limit(client_ip=address)
    if not allowed:
        language = _language(request)
        with translation.override(language):
            response = render(request, "claim/rate_limited.html", {"retry_after": retry_after}, status=429)
        response["Retry-After"] = str(max(1, retry_after))
        return _localised(request, _private(response), language)
    language = _language(request)
    try:
        tenant = claim_tenant_get(token=token)
        context.bind(tenant=tenant.schema_name)
        with tenant_context(tenant):
            language = _language(request, claim_locale(token=token))
            # Messages the services write (a refused choice, address errors) come out in the page's language.
            with translation.override(language):
                page = action()
    except ClaimNotFound as dead:
        claim_failure_record(client_ip=address)
        return _not_found(request, language, dead)
    status = 422 if page.error or page.field_errors else 200
    with translation.override(language):
        response = render(
            request,
            "claim/page.html",
            {"page": page, "token": token, "address_fields": _address_fields(page)},
            status=status,
        )
    if page.binding:  # revealed, or verified with the one-time code: remember this browser
        _bind(response, request=request, token=token, page=page)
    return _localised(request, _private(response), language)


def _address_fields(page: ClaimPage) -> list[dict[str, object]]:
    country = page.address.get("country", "").upper()
    return [
        {
            "name": key,
            "label": ADDRESS_LABELS[key],
            "value": page.address.get(key, ""),
            "errors": page.field_errors.get(key, []),
            "autocomplete": ADDRESS_AUTOCOMPLETE[key],
            # A fixed list (Malaysia's states and federal territories) is a choice, not a guess.
            "choices": STATE_CHOICES.get(country, []) if key == "state" else [],
        }
        for key in ADDRESS_FIELDS
    ]


@never_cache
@require_http_methods(["GET", "HEAD"])
def claim_page(request: HttpRequest, token: str) -> HttpResponse:
    return _claim(request, token, lambda: claim_open(token=token, binding=_binding(request)))


@never_cache
@require_POST
def claim_reveal_view(request: HttpRequest, token: str) -> HttpResponse:
    return _claim(request, token, lambda: claim_reveal(token=token, binding=_binding(request)))


@never_cache
@require_POST
def claim_choose_view(request: HttpRequest, token: str) -> HttpResponse:
    product_id = request.POST.get("product_id", "")
    return _claim(request, token, lambda: claim_choose(token=token, product_id=product_id, binding=_binding(request)))


@never_cache
@require_POST
def claim_verify_send_view(request: HttpRequest, token: str) -> HttpResponse:
    return _claim(request, token, lambda: claim_verify_send(token=token))


@never_cache
@require_POST
def claim_verify_view(request: HttpRequest, token: str) -> HttpResponse:
    code = request.POST.get("code", "")[:20]
    return _claim(request, token, lambda: claim_verify(token=token, code=code, binding=_binding(request)))


@never_cache
@require_POST
def claim_address_view(request: HttpRequest, token: str) -> HttpResponse:
    address = {key: request.POST.get(key, "") for key in ADDRESS_FIELDS}
    return _claim(request, token, lambda: claim_address_confirm(token=token, address=address))


__all__ = [
    "claim_address_view",
    "claim_choose_view",
    "claim_page",
    "claim_reveal_view",
    "claim_verify_send_view",
    "claim_verify_view",
]


@never_cache
@require_http_methods(["GET", "HEAD"])
def email_open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    """GET /e/<token>.gif: the reward email's open pixel (fulfillment.engagement). The same image whatever the
    token: a bad or replayed one changes nothing and says nothing."""
    from .engagement import PIXEL, email_opened

    if request.method == "GET":
        email_opened(token=token)
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_http_methods(["GET"])
def email_click(request: HttpRequest, token: str) -> HttpResponse:
    """GET /c/<token>: a reward email's tracked link (fulfillment.engagement): marks the reward opened and
    redirects to the target signed into the token, and only there; any other token is a 404."""
    from .engagement import email_clicked

    target = email_clicked(token=token)
    if target is None:
        raise Http404
    response = HttpResponseRedirect(target)
    response["Referrer-Policy"] = "no-referrer"  # the target learns nothing of the token
    return response
