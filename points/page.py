"""The recipients' points page `/p/` on the tenant's portal host: sign in by emailed link, see the balance and
history, and spend points on the program's curated catalogue (priced in points) for a reward delivered as usual.

Phone first (the claim page's stylesheet), in the person's language (`?lang=` switches), rate-limited sign-in.
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from catalog.models import Product
from catalog.selectors import fx_rate_get, product_list_for_tenant
from core.db import connection
from core.errors import ApplicationError
from core.money import format_amount
from orders.planning import convert_at_rate
from people.models import Person
from programs.models import Program

from .redemptions import points_redeem
from .selectors import person_points, person_points_history
from .sign_in import sign_in_allowed, sign_in_link_send, sign_in_redeem, sign_in_valid

SESSION_KEY = "points_person_id"
CATALOGUE_SIZE = 24  # products shown per program; the curated list is short by design
LANGUAGES = ("en", "ms")


def _tenant_host_only(request: HttpRequest) -> None:
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == "public" or getattr(tenant, "is_sandbox", True):
        raise Http404("The points page is on your company's portal address.")


def _language(request: HttpRequest, person: Person | None) -> str:
    wanted = request.GET.get("lang") or request.session.get("points_lang") or (person.locale if person else "")
    if request.GET.get("lang") in LANGUAGES:
        request.session["points_lang"] = request.GET["lang"]
    language = wanted if wanted in LANGUAGES else "en"
    translation.activate(language)
    return language


def _render(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _signed_in(request: HttpRequest) -> Person | None:
    person_id = request.session.get(SESSION_KEY)
    if not person_id:
        return None
    return Person.objects.filter(pk=person_id, status="active").first()


def _client_ip(request: HttpRequest) -> str:
    from tenants.middleware import client_ip

    return client_ip(request)


@require_http_methods(["GET", "POST"])
def points_home(request: HttpRequest) -> HttpResponse:
    _tenant_host_only(request)
    person = _signed_in(request)
    language = _language(request, person)
    if person is None:
        return _sign_in_form(request, language)
    return _render(request, "points/home.html", {"person": person, "lang": language, **_home(person)})


def _sign_in_form(request: HttpRequest, language: str) -> HttpResponse:
    context: dict[str, Any] = {"lang": language, "email": ""}
    if request.method == "POST":
        email = (request.POST.get("email") or "").strip()[:254]
        context["email"] = email
        if "@" not in email:
            context["error"] = _("Enter the email address your company has for you.")
            return _render(request, "points/sign_in.html", context, status=200)
        allowed, retry_after = sign_in_allowed(schema=connection.schema_name, email=email.lower(),
                                               ip=_client_ip(request))  # fmt: skip
        if not allowed:
            context["error"] = _("Too many links asked for. Try again in %(minutes)s minutes.") % {
                "minutes": max(1, math.ceil(retry_after / 60))}  # fmt: skip
            response = _render(request, "points/sign_in.html", context, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        sign_in_link_send(email=email, link_for=lambda token: request.build_absolute_uri(f"/p/login/{token}"))
        context["sent"] = True
    return _render(request, "points/sign_in.html", context)


@require_http_methods(["GET", "POST"])
def points_login(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners that open links do not use them up); POST signs in."""
    _tenant_host_only(request)
    language = _language(request, None)
    if request.method == "GET":
        return _render(request, "points/login.html", {"lang": language, "valid": sign_in_valid(token=token)})
    person = sign_in_redeem(token=token)
    if person is None:
        return _render(request, "points/login.html", {"lang": language, "valid": False}, status=410)
    request.session.cycle_key()
    request.session[SESSION_KEY] = str(person.pk)
    return redirect("/p/")


@require_http_methods(["POST"])
def points_logout(request: HttpRequest) -> HttpResponse:
    _tenant_host_only(request)
    request.session.pop(SESSION_KEY, None)
    return redirect("/p/")


@require_http_methods(["POST"])
def points_redeem_view(request: HttpRequest) -> HttpResponse:
    _tenant_host_only(request)
    person = _signed_in(request)
    _language(request, person)
    if person is None:
        return redirect("/p/")
    program = Program.objects.filter(slug=request.POST.get("program", ""), points_self_redeem=True,
                                     is_active=True).first()  # fmt: skip
    product = _product(request.POST.get("product_id", ""))
    try:
        amount = Decimal(request.POST.get("amount", ""))
    except InvalidOperation:
        amount = Decimal(0)
    if program is None or product is None or not amount.is_finite() or amount <= 0:
        messages.error(request, _("Choose a reward and an amount."))
        return redirect("/p/")
    try:
        _order, spent, balance = points_redeem(
            program=program, person=person, product_id=str(product.pk), amount=amount, currency=product.currency,
            delivery_method="email", actor=None, created_by_email=f"points-page:{person.email}", bearer=False,
        )  # fmt: skip
    except ApplicationError as exc:
        message = (
            _("Not enough %(name)s for this reward.") % {"name": program.points_name}
            if exc.code == "insufficient_points"
            else exc.detail
        )
        messages.error(request, message)
        return redirect("/p/")
    # Post/redirect/get: reloading the confirmation must not redeem a second time.
    request.session["points_redeemed"] = {
        "program": program.points_name, "spent": spent, "balance": balance, "brand": product.brand.name,
        "amount": format_amount(amount, product.currency), "currency": product.currency, "email": person.email,
        "product_id": str(product.pk),
    }  # fmt: skip
    return redirect("/p/done")


@require_http_methods(["GET"])
def points_redeemed(request: HttpRequest) -> HttpResponse:
    _tenant_host_only(request)
    person = _signed_in(request)
    language = _language(request, person)
    done = request.session.get("points_redeemed")
    if person is None or not done:
        return redirect("/p/")
    product = _product(done.get("product_id", ""))
    headline = _discount_headline(product) if product is not None else ""  # in the page's language
    return _render(request, "points/redeemed.html", {"lang": language, "done": done, "headline": headline})


def _product(value: str) -> Product | None:
    try:
        return Product.objects.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        return None


def _points_for(*, program: Program, product: Product, amount: Decimal) -> int | None:
    """The points price of a reward, as a redemption would charge it (face value, FX and its fee)."""
    assert program.points_per_unit
    if product.currency == program.points_currency:
        total = amount
    else:
        fx = fx_rate_get(base=product.currency, quote=program.points_currency)
        if fx is None:
            return None
        charge, fee = convert_at_rate(amount=amount, rate=fx.rate, to_currency=program.points_currency)
        total = charge + fee
    return math.ceil(total * program.points_per_unit)


def _home(person: Person) -> dict[str, Any]:
    rows = [row for row in person_points(person_id=person.pk) if row.program.points_self_redeem]
    programs = []
    for row in rows:
        products = []
        # Discounts priced in money are sold for points too; a zero-cost one is the company's to send, never sold.
        catalogue = product_list_for_tenant(program=row.program).filter(type__in=("digital", "choice", "discount"))
        for product in catalogue.exclude(zero_cost=True)[:CATALOGUE_SIZE]:
            if product.denomination_type == "fixed":
                values = sorted(product.denomination_values)
            else:
                values = [value for value in (product.denomination_min, product.denomination_max) if value is not None]
            options = []
            for value in values:
                price = _points_for(program=row.program, product=product, amount=Decimal(value))
                if price is not None:
                    options.append({"amount": format_amount(Decimal(value), product.currency), "points": price,
                                    "affordable": price <= row.balance})  # fmt: skip
            if options:
                products.append({"product": product, "options": options if product.denomination_type == "fixed"
                                 else options[:1], "headline": _discount_headline(product)})  # fmt: skip
        programs.append({"row": row, "products": products,
                         "value": format_amount(row.value, row.program.points_currency)})  # fmt: skip
    history = list(person_points_history(person_id=person.pk)[:20])
    return {"programs": programs, "history": history}


def _discount_headline(product: Product) -> str:
    """'20% off at Kedai Kopi until 31 December 2026' for a discount product, in the active language; '' else."""
    from fulfillment.discounts import discount_headline
    from orders.models import Reward

    terms = product.discount_snapshot()
    if terms is None:
        return ""
    snapshot = {"type": product.type, "brand": product.brand.name, "discount": terms}
    return discount_headline(Reward(product_snapshot=snapshot, currency=product.currency))
