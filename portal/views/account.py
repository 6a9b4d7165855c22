"""Your account: TOTP two-factor enrolment (QR code and secret), one-time recovery codes, and turning it off.

The enrolment steps (`TotpEnrolment`) are shared with the operator console, which enrols operators the same way.
"""

from __future__ import annotations

from typing import Any

import segno
from django import forms
from django.conf import settings as django_settings
from django.contrib import messages
from django.shortcuts import redirect
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.services import (
    recovery_codes_generate,
    recovery_codes_left,
    totp_disable,
    totp_enable,
    totp_provisioning_uri,
    totp_secret_new,
    totp_verify,
    user_language_set,
)
from core import crypto
from core.errors import ApplicationError

from ..forms import TotpCodeForm
from ..middleware import portal_language
from ..mixins import PortalView

PENDING_SECRET_SESSION_KEY = "portal_totp_pending"  # encrypted with core.crypto, even in the session


class TotpEnrolment:
    """Enrol, regenerate recovery codes, turn off: for the signed-in `user` of a request whose session holds the
    pending secret under `session_key`. Returns (message, recovery codes to show once) or raises ApplicationError."""

    def __init__(
        self, request, user: Any, *, session_key: str, issuer_name: str, ip: str, may_disable: bool = True
    ) -> None:
        self.request, self.user, self.session_key, self.issuer_name, self.ip = (
            request,
            user,
            session_key,
            issuer_name,
            ip,
        )
        self.may_disable = may_disable  # False where two-factor is required (tenant setting, operators)

    def pending_secret(self) -> str:
        stored = self.request.session.get(self.session_key)
        if stored:
            return crypto.decrypt(stored)
        secret = totp_secret_new()
        self.request.session[self.session_key] = crypto.encrypt(secret)
        return secret

    def context(self) -> dict:
        if self.user.totp_enabled:
            return {"recovery_codes_left": recovery_codes_left(user=self.user)}
        secret = self.pending_secret()
        uri = totp_provisioning_uri(user=self.user, secret=secret, tenant_name=self.issuer_name)
        qr = segno.make(uri, error="m")
        return {
            "qr_svg": mark_safe(qr.svg_inline(border=4, dark="#111827", light="#ffffff", omitsize=True)),  # noqa: S308 — generated SVG
            "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        }

    def act(self, action: str, code: str) -> tuple[str, list[str]]:
        if not self.user.totp_enabled:
            totp_enable(user=self.user, secret=self.pending_secret(), code=code, ip=self.ip)
            self.request.session.pop(self.session_key, None)
            codes = recovery_codes_generate(user=self.user, ip=self.ip)
            return _("Two-factor authentication is on. You'll be asked for a code at sign-in."), codes
        if action == "recovery_codes":
            if not totp_verify(user=self.user, code=code):
                raise ApplicationError(_("That code is not valid."), code="invalid_code",
                                       errors={"code": [_("That code is not valid.")]})  # fmt: skip
            return _("New recovery codes: the old ones no longer work."), recovery_codes_generate(
                user=self.user, ip=self.ip
            )
        if not self.may_disable:
            raise ApplicationError(_("Two-factor sign-in is required here: it cannot be turned off."),
                                   code="two_factor_required")  # fmt: skip
        totp_disable(user=self.user, code=code, ip=self.ip)
        return _("Two-factor authentication is off."), []


class TwoFactorView(PortalView):
    permission = None  # every signed-in staff member
    live_schema_only = True
    two_factor_enrolment = True  # where a tenant that requires two-factor sends staff who have none
    nav_section = "account"
    page_title = gettext_lazy("Two-factor authentication")
    template_name = "portal/two_factor.html"

    def _enrolment(self) -> TotpEnrolment:
        return TotpEnrolment(self.request, self.request.user, session_key=PENDING_SECRET_SESSION_KEY,
                             issuer_name=self.tenant.name, ip=self.client_ip,
                             may_disable=not self.tenant.require_two_factor)  # fmt: skip

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", TotpCodeForm())
        context["required"] = self.tenant.require_two_factor
        context.update(self._enrolment().context())
        return context

    def post(self, request):
        form = TotpCodeForm(request.POST)
        if form.is_valid():
            try:
                message, codes = self._enrolment().act(request.POST.get("action", ""), form.cleaned_data["code"])
            except ApplicationError as exc:
                form.add_error("code", exc.errors.get("code", [exc.detail])[0])
            else:
                messages.success(request, message)
                if not codes:
                    return redirect("portal:two_factor")
                # Shown on this response only: the codes are stored hashed and cannot be shown again.
                return self.render_to_response(self.get_context_data(recovery_codes=codes))
        return self.render_to_response(self.get_context_data(form=form))


class LanguageForm(forms.Form):
    language = forms.ChoiceField(label=gettext_lazy("Portal language"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", gettext_lazy("The company's default"))] + [
            (code, name) for code, name in django_settings.LANGUAGES
        ]


class LanguageView(PortalView):
    """Your portal language (en / ms); the company's default when you choose none."""

    permission = None  # every signed-in staff member
    live_schema_only = True
    nav_section = "account"
    page_title = gettext_lazy("Language")
    template_name = "portal/account_language.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", LanguageForm(initial={"language": self.request.user.language}))
        return context

    def post(self, request):
        form = LanguageForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=422)
        user_language_set(user=request.user, language=form.cleaned_data["language"], ip=self.client_ip)
        with translation.override(portal_language(request, self.tenant)):  # say it in the language just chosen
            messages.success(request, _("Language saved."))
        return redirect("portal:account_language")
