"""Sign-in on a tenant host: password, optional TOTP step, throttling, logout, password reset, mode switch."""

from __future__ import annotations

import math
import time

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.utils.translation import gettext as _
from django.views import View

from accounts.models import User
from accounts.services import password_set, second_factor_verify, staff_email_language
from audit.services import audit_record
from core import i18n
from tenants.middleware import client_ip
from tenants.services import tenant_sandbox_ensure

from ..forms import LoginForm, ModeForm, SecondFactorForm
from ..mixins import (
    LAST_SEEN_SESSION_KEY,
    LIVE,
    MODE_SESSION_KEY,
    SANDBOX,
    TENANT_SESSION_KEY,
    PortalMixin,
    TenantHostRequiredMixin,
    actor_for,
)
from ..throttle import login_failure_record, login_retry_after, password_reset_allowed

PENDING_2FA_SESSION_KEY = "portal_2fa_pending"
PENDING_2FA_TTL_SECONDS = 300
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _safe_next(request, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("portal:dashboard")


def _throttled(request, retry_after: int):
    response = render(
        request,
        "portal/auth/throttled.html",
        {"minutes": max(1, math.ceil(retry_after / 60)), "page_title": "Too many attempts"},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


def _complete_login(request, user: User, next_url: str):
    login(request, user, backend=AUTH_BACKEND)  # rotates the session key (no fixation)
    request.session[TENANT_SESSION_KEY] = request.tenant.schema_name
    request.session[MODE_SESSION_KEY] = LIVE
    request.session[LAST_SEEN_SESSION_KEY] = int(time.time())
    audit_record(actor=f"staff:{user.email}", action="auth.login", object_type="user", object_id=user.pk,
                 ip=client_ip(request))  # fmt: skip
    if request.tenant.require_two_factor and not user.totp_enabled:
        return redirect("portal:two_factor")
    return HttpResponseRedirect(_safe_next(request, next_url))


class LoginView(TenantHostRequiredMixin, View):
    template_name = "portal/auth/login.html"

    def get(self, request):
        if request.user.is_authenticated:
            return redirect(_safe_next(request, request.GET.get("next")))
        return self._render(request, LoginForm())

    def _render(self, request, form, status=200):
        context = {"form": form, "next": request.POST.get("next") or request.GET.get("next", ""),
                   "page_title": "Sign in"}  # fmt: skip
        return render(request, self.template_name, context, status=status)

    def post(self, request):
        form = LoginForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        email = form.cleaned_data["email"].strip().lower()
        ip = client_ip(request)
        schema = request.tenant.schema_name
        retry_after = login_retry_after(tenant_schema=schema, email=email, ip=ip)
        if retry_after:
            return _throttled(request, retry_after)
        user = authenticate(request, username=email, password=form.cleaned_data["password"])
        if user is None:
            login_failure_record(tenant_schema=schema, email=email, ip=ip)
            audit_record(actor="anonymous", action="auth.login_failed", data={"email": email}, ip=ip)
            form.add_error(None, "That email and password don't match an active account here.")
            return self._render(request, form, status=200)
        next_url = request.POST.get("next", "")
        if user.totp_enabled:
            request.session.cycle_key()
            request.session[PENDING_2FA_SESSION_KEY] = {"user_id": user.pk, "at": int(time.time()), "next": next_url}
            return redirect("portal:login_two_factor")
        return _complete_login(request, user, next_url)


class LoginTwoFactorView(TenantHostRequiredMixin, View):
    template_name = "portal/auth/two_factor.html"

    def _pending_user(self, request) -> tuple[User | None, dict]:
        pending = request.session.get(PENDING_2FA_SESSION_KEY) or {}
        if not pending or time.time() - pending.get("at", 0) > PENDING_2FA_TTL_SECONDS:
            return None, {}
        # No user_id (None) finds no one, as an unknown id does.
        user = User.objects.filter(pk=pending.get("user_id"), is_active=True).first()  # type: ignore[misc]
        return user, pending

    def _render(self, request, form):
        return render(request, self.template_name, {"form": form, "page_title": "Two-factor authentication"})

    def get(self, request):
        user, _ = self._pending_user(request)
        if user is None:
            messages.info(request, gettext("Sign in again to continue."))
            return redirect("portal:login")
        return self._render(request, SecondFactorForm())

    def post(self, request):
        user, pending = self._pending_user(request)
        if user is None:
            messages.info(request, gettext("That took too long; sign in again."))
            return redirect("portal:login")
        ip = client_ip(request)
        schema = request.tenant.schema_name
        retry_after = login_retry_after(tenant_schema=schema, email=user.email, ip=ip)
        if retry_after:
            return _throttled(request, retry_after)
        form = SecondFactorForm(request.POST)
        if form.is_valid() and second_factor_verify(user=user, code=form.cleaned_data["code"], ip=ip):
            del request.session[PENDING_2FA_SESSION_KEY]
            return _complete_login(request, user, pending.get("next", ""))
        if form.is_valid():
            login_failure_record(tenant_schema=schema, email=user.email, ip=ip)
            audit_record(actor=f"staff:{user.email}", action="auth.totp_failed", object_type="user",
                         object_id=user.pk, ip=ip)  # fmt: skip
            form.add_error("code", _("That code is not valid. Use the current code from your authenticator app, or an "
                                     "unused recovery code."))  # fmt: skip
        return self._render(request, form)


class LogoutView(TenantHostRequiredMixin, View):
    """POST only (a link or an image tag must not sign anyone out)."""

    def get(self, request):
        return HttpResponseNotAllowed(["POST"])

    def post(self, request):
        if request.user.is_authenticated:
            audit_record(actor=actor_for(request), action="auth.logout", object_type="user",
                         object_id=request.user.pk, ip=client_ip(request))  # fmt: skip
        logout(request)
        messages.success(request, gettext("You have been signed out."))
        return redirect("portal:login")


class ModeSwitchView(PortalMixin, View):
    """POST mode=live|sandbox: which schema the portal shows; kept in the session."""

    permission = None
    live_schema_only = True

    def post(self, request):
        form = ModeForm(request.POST)
        if form.is_valid():
            if form.cleaned_data["mode"] == SANDBOX:
                tenant_sandbox_ensure(tenant=request.tenant)  # the sandbox's first use provisions its schema
            request.session[MODE_SESSION_KEY] = form.cleaned_data["mode"]
        return HttpResponseRedirect(_safe_next(request, request.POST.get("next")))


# --- Password reset: Django's views, our templates, on the tenant host ---------------------------------


class _PasswordResetForm(PasswordResetForm):
    """Django's form; each email in the language its staff member reads the portal in (not the requester's)."""

    def send_mail(self, subject_template_name, email_template_name, context, *args, **kwargs):
        with i18n.language(staff_email_language(context["user"])):
            super().send_mail(subject_template_name, email_template_name, context, *args, **kwargs)


class PasswordResetView(TenantHostRequiredMixin, auth_views.PasswordResetView):
    template_name = "portal/auth/password_reset_form.html"
    form_class = _PasswordResetForm
    email_template_name = "portal/emails/password_reset.txt"
    html_email_template_name = "portal/emails/password_reset.html"
    subject_template_name = "portal/emails/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")
    extra_context = {"page_title": "Reset your password"}

    def form_valid(self, form):
        ip = client_ip(self.request)
        if not password_reset_allowed(ip=ip):
            return _throttled(self.request, 3600)
        self.extra_email_context = {"tenant_name": self.request.tenant.name}
        audit_record(actor="anonymous", action="auth.password_reset_request",
                     data={"email": form.cleaned_data["email"].lower()}, ip=ip)  # fmt: skip
        return super().form_valid(form)


class PasswordResetDoneView(TenantHostRequiredMixin, auth_views.PasswordResetDoneView):
    template_name = "portal/auth/password_reset_done.html"
    extra_context = {"page_title": "Check your email"}


class _PasswordSetForm(SetPasswordForm):
    """Django's form, saved through accounts.services.password_set (which records the audit row)."""

    ip = ""

    def save(self, commit=True):
        return password_set(user=self.user, password=self.cleaned_data["new_password1"], ip=self.ip)


class PasswordResetConfirmView(TenantHostRequiredMixin, auth_views.PasswordResetConfirmView):
    template_name = "portal/auth/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")
    extra_context = {"page_title": "Choose a password"}
    form_class = _PasswordSetForm

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.ip = client_ip(self.request)
        return form


class PasswordResetCompleteView(TenantHostRequiredMixin, auth_views.PasswordResetCompleteView):
    template_name = "portal/auth/password_reset_complete.html"
    extra_context = {"page_title": "Password saved"}
