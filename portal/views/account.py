"""Your account: optional TOTP two-factor enrolment (QR code and secret) and turning it off."""

from __future__ import annotations

import segno
from django.contrib import messages
from django.shortcuts import redirect
from django.utils.safestring import mark_safe

from accounts.services import totp_disable, totp_enable, totp_provisioning_uri, totp_secret_new
from core import crypto
from core.errors import ApplicationError

from ..forms import TotpCodeForm
from ..mixins import PortalView

PENDING_SECRET_SESSION_KEY = "portal_totp_pending"  # encrypted with core.crypto, even in the session


class TwoFactorView(PortalView):
    permission = None  # every signed-in staff member
    live_schema_only = True
    nav_section = "account"
    page_title = "Two-factor authentication"
    template_name = "portal/two_factor.html"

    def _pending_secret(self) -> str:
        stored = self.request.session.get(PENDING_SECRET_SESSION_KEY)
        if stored:
            return crypto.decrypt(stored)
        secret = totp_secret_new()
        self.request.session[PENDING_SECRET_SESSION_KEY] = crypto.encrypt(secret)
        return secret

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context.setdefault("form", TotpCodeForm())
        if not user.totp_enabled:
            secret = self._pending_secret()
            uri = totp_provisioning_uri(user=user, secret=secret, tenant_name=self.tenant.name)
            qr = segno.make(uri, error="m")
            context["qr_svg"] = mark_safe(qr.svg_inline(border=4, dark="#111827", light="#ffffff", omitsize=True))  # noqa: S308 — generated SVG
            context["secret_groups"] = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
        return context

    def post(self, request):
        form = TotpCodeForm(request.POST)
        if form.is_valid():
            try:
                if request.user.totp_enabled:
                    totp_disable(user=request.user, code=form.cleaned_data["code"], ip=self.client_ip)
                    messages.success(request, "Two-factor authentication is off.")
                else:
                    totp_enable(user=request.user, secret=self._pending_secret(), code=form.cleaned_data["code"],
                                ip=self.client_ip)  # fmt: skip
                    request.session.pop(PENDING_SECRET_SESSION_KEY, None)
                    messages.success(request, "Two-factor authentication is on. You'll be asked for a code at sign-in.")
                return redirect("portal:two_factor")
            except ApplicationError as exc:
                form.add_error("code", exc.errors.get("code", [exc.detail])[0])
        return self.render_to_response(self.get_context_data(form=form))
