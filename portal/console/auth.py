"""Operator console sign-in and sign-out (public host; failed attempts throttled like the portal's), with the same
TOTP second step and recovery codes as staff (accounts.services), operator two-factor enrolment, and the Django
admin's sign-in routed through here so `/admin/` has the second factor too."""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.services import second_factor_verify, user_language_set
from core.errors import ApplicationError
from tenants.middleware import client_ip

from ..forms import LoginForm, SecondFactorForm, TotpCodeForm
from ..throttle import login_failure_record, login_retry_after
from ..views.account import TotpEnrolment
from .base import operator_needs_enrolment, operator_required, public_host_only

AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"
THROTTLE_SCOPE = "console"
PENDING_2FA_SESSION_KEY = "console_2fa_pending"
PENDING_2FA_TTL_SECONDS = 300
PENDING_SECRET_SESSION_KEY = "console_totp_pending"
TOTP_ISSUER = "Operator console"


def _next_url(request) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    return next_url or reverse("console:tenants")


def _throttled(request, template: str, context: dict, retry_after: int):
    context = {
        **context,
        "page_title": _("Too many attempts"),
        "throttled_minutes": max(1, math.ceil(retry_after / 60)),
    }
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _after_sign_in(request, user, next_url: str):
    if operator_needs_enrolment(user):
        messages.info(request, _("Operators must use two-factor sign-in: set it up to continue."))
        return redirect("console:two_factor")
    return redirect(next_url)


@public_host_only
def login_view(request):
    next_url = _next_url(request)
    if request.method == "GET":
        if request.user.is_authenticated and request.user.is_staff:
            return _after_sign_in(request, request.user, next_url)
        form = LoginForm()
    elif request.method == "POST":
        form = LoginForm(request.POST)
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            ip = client_ip(request)
            retry_after = login_retry_after(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
            if retry_after:
                return _throttled(request, "console/login.html", {"form": form, "next": next_url}, retry_after)
            user = authenticate(request, username=email, password=form.cleaned_data["password"])
            if user is None or not user.is_staff:
                login_failure_record(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
                form.add_error(None, _("That email and password don't match an operator account."))
            elif user.totp_enabled:
                request.session.cycle_key()
                request.session[PENDING_2FA_SESSION_KEY] = {"user_id": user.pk, "at": int(time.time()),
                                                            "next": next_url}  # fmt: skip
                return redirect("console:login_two_factor")
            else:
                login(request, user, backend=AUTH_BACKEND)
                return _after_sign_in(request, user, next_url)
    else:
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(request, "console/login.html", {"form": form, "next": next_url, "page_title": _("Operator sign-in")})


@public_host_only
def login_two_factor_view(request):
    """The second step: an authenticator code or a recovery code, within PENDING_2FA_TTL_SECONDS of the password."""
    from accounts.models import User

    pending = request.session.get(PENDING_2FA_SESSION_KEY) or {}
    user = None
    if pending and time.time() - pending.get("at", 0) <= PENDING_2FA_TTL_SECONDS:
        user = User.objects.filter(pk=pending.get("user_id"), is_active=True, is_staff=True).first()
    if user is None:
        messages.info(request, _("Sign in again to continue."))
        return redirect("console:login")
    context = {"page_title": _("Two-factor authentication")}
    if request.method == "POST":
        ip = client_ip(request)
        retry_after = login_retry_after(tenant_schema=THROTTLE_SCOPE, email=user.email, ip=ip)
        if retry_after:
            return _throttled(request, "console/login_two_factor.html", {"form": SecondFactorForm()}, retry_after)
        form = SecondFactorForm(request.POST)
        if form.is_valid() and second_factor_verify(user=user, code=form.cleaned_data["code"], ip=ip):
            del request.session[PENDING_2FA_SESSION_KEY]
            login(request, user, backend=AUTH_BACKEND)
            return redirect(pending.get("next") or reverse("console:tenants"))
        if form.is_valid():
            login_failure_record(tenant_schema=THROTTLE_SCOPE, email=user.email, ip=ip)
            form.add_error("code", _("That code is not valid. Use the current code from your authenticator app, or "
                                     "an unused recovery code."))  # fmt: skip
    else:
        form = SecondFactorForm()
    return render(request, "console/login_two_factor.html", {**context, "form": form})


@operator_required(enrolment=True)
def two_factor_view(request):
    """An operator's own two-factor: enrol (QR code), new recovery codes, turn off (unless it is required)."""
    enrolment = TotpEnrolment(request, request.user, session_key=PENDING_SECRET_SESSION_KEY, issuer_name=TOTP_ISSUER,
                              ip=client_ip(request), may_disable=not settings.OPERATOR_REQUIRE_TWO_FACTOR)  # fmt: skip
    form = TotpCodeForm(request.POST or None)
    codes: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            message, codes = enrolment.act(request.POST.get("action", ""), form.cleaned_data["code"])
        except ApplicationError as exc:
            form.add_error("code", exc.errors.get("code", [exc.detail])[0])
        else:
            messages.success(request, message)
            if not codes:
                return redirect("console:two_factor")
    context = {"form": form, "recovery_codes": codes, "nav_section": "two_factor",
               "page_title": _("Two-factor authentication"), **enrolment.context()}  # fmt: skip
    return render(request, "console/two_factor.html", context)


def admin_login_view(request, extra_context=None):
    """The Django admin's sign-in page: the console's, so operators pass the same second factor."""
    query = urlencode({"next": request.GET.get("next") or reverse("admin:index")})
    return redirect(f"{reverse('console:login')}?{query}")


@public_host_only
@require_POST
def logout_view(request):
    logout(request)
    return redirect("console:login")


@operator_required
@require_POST
def language_view(request):
    """The console's language for this operator (`en`, `ms`; '' = the browser's), kept on their account."""
    try:
        user_language_set(user=request.user, language=request.POST.get("language", ""), ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    return redirect(_next_url(request))
