"""Settings (admins): the approval policy (maker–checker thresholds per currency, roles, expiry) and whether
staff must use two-factor sign-in. The services in tenants.policies validate, store and audit."""

from __future__ import annotations

from django import forms
from django.conf import settings as django_settings
from django.contrib import messages
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.errors import ApplicationError
from core.money import format_amount
from core.zones import zone_names
from funds.selectors import balance_list
from tenants.policies import (
    APPROVAL_EXPIRES_DEFAULT_DAYS,
    APPROVAL_EXPIRES_MAX_DAYS,
    approval_policy_of,
    approval_policy_set,
    two_factor_requirement_set,
)
from tenants.tenant_settings import tenant_settings_get, tenant_settings_update

from ..fields import AmountField, amount_text
from ..mixins import PortalView
from ..permissions import Perm

ROLE_CHOICES = [
    ("manager", gettext_lazy("Managers")),
    ("finance", gettext_lazy("Finance")),
    ("admin", gettext_lazy("Admins")),
]


class SecuritySettingsForm(forms.Form):
    """One threshold field per currency the tenant holds funds in (`threshold_<CUR>`), then the rest."""

    expires_after_days = forms.IntegerField(
        label=gettext_lazy("Requests expire after (days)"),
        min_value=1,
        max_value=APPROVAL_EXPIRES_MAX_DAYS,
        initial=APPROVAL_EXPIRES_DEFAULT_DAYS,
        help_text=gettext_lazy("Nobody decided by then: the request is rejected and its funds released."),
    )
    roles = forms.MultipleChoiceField(
        label=gettext_lazy("Every send by these roles needs approval"),
        choices=ROLE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    require_two_factor = forms.BooleanField(
        label=gettext_lazy("Require two-factor sign-in for all staff"),
        required=False,
        help_text=gettext_lazy("Staff without it are asked to set it up the next time they sign in."),
    )

    def __init__(self, *args, currencies: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.currencies = currencies
        for currency in currencies:
            self.fields[f"threshold_{currency}"] = AmountField(
                currency=currency,
                label=_("Approval needed at or over (%(currency)s)") % {"currency": currency},
                required=False,
                help_text=_("Sends costing this much or more wait for a second person. Leave empty for no threshold."),
            )

    def threshold_fields(self):
        return [self[f"threshold_{currency}"] for currency in self.currencies]

    def policy(self) -> dict:
        data = self.cleaned_data
        thresholds = {c: amount_text(data[f"threshold_{c}"]) for c in self.currencies if data[f"threshold_{c}"]}
        if not thresholds and not data["roles"]:
            return {}
        return {"thresholds": thresholds, "expires_after_days": data["expires_after_days"], "roles": data["roles"]}


class SecuritySettingsView(PortalView):
    permission = Perm.SETTINGS
    live_schema_only = True  # tenant settings: the same for live and sandbox
    nav_section = "settings"
    page_title = gettext_lazy("Approvals and sign-in")
    template_name = "portal/settings_security.html"

    def _currencies(self) -> list[str]:
        return sorted({self.tenant.default_currency, *(b.currency for b in balance_list())})

    def _form(self, data=None) -> SecuritySettingsForm:
        policy = approval_policy_of(self.tenant)
        initial = {
            "expires_after_days": policy.expires_after_days,
            "roles": sorted(policy.roles),
            "require_two_factor": self.tenant.require_two_factor,
            **{f"threshold_{c}": format_amount(a, c) for c, a in policy.thresholds.items()},
        }
        return SecuritySettingsForm(data, initial=initial, currencies=self._currencies())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", self._form())
        context["policy_keys"] = sorted(approval_policy_of(self.tenant).keys)
        return context

    def post(self, request):
        form = self._form(request.POST)
        if form.is_valid():
            policy = form.policy()
            if policy and approval_policy_of(self.tenant).keys:
                policy["keys"] = sorted(approval_policy_of(self.tenant).keys)  # set over the API; kept as they are
            try:
                approval_policy_set(tenant=self.tenant, policy=policy, actor=self.actor)
            except ApplicationError as exc:
                for name, errors in exc.errors.items():
                    field = name.replace("approval_policy.thresholds.", "threshold_").replace("approval_policy.", "")
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                if form.cleaned_data["require_two_factor"] != self.tenant.require_two_factor:
                    two_factor_requirement_set(
                        tenant=self.tenant, required=form.cleaned_data["require_two_factor"], actor=self.actor
                    )
                messages.success(request, _("Settings saved."))
                return redirect("portal:settings_security")
        return self.render_to_response(self.get_context_data(form=form), status=422)


class CompanySettingsForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Company name"), max_length=200)
    default_locale = forms.ChoiceField(
        label=gettext_lazy("Recipients' language"),
        required=False,
        help_text=gettext_lazy(
            "For gifts whose recipient and program name no language. Empty: the recipient's browser decides."
        ),
    )
    timezone = forms.ChoiceField(
        label=gettext_lazy("Time zone"),
        help_text=gettext_lazy("The portal shows times in it, and a delivery time you type means that time there."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_locale"].choices = [("", gettext_lazy("The recipient's browser"))] + [
            (code, name) for code, name in django_settings.LANGUAGES
        ]
        self.fields["timezone"].choices = [(name, name) for name in sorted(zone_names())]


class CompanySettingsView(PortalView):
    """The company's name, recipients' default language and time zone (tenants.tenant_settings, like the API)."""

    permission = Perm.SETTINGS
    live_schema_only = True  # tenant settings: the same for live and sandbox
    nav_section = "settings"
    page_title = gettext_lazy("Company")
    template_name = "portal/settings_company.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", CompanySettingsForm(initial=tenant_settings_get(tenant=self.tenant)))
        return context

    def post(self, request):
        form = CompanySettingsForm(request.POST)
        if form.is_valid():
            try:
                tenant_settings_update(tenant=self.tenant, changes=form.cleaned_data, actor=self.actor)
            except ApplicationError as exc:
                for name, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(name if name in form.fields else None, error)
            else:
                messages.success(request, _("Settings saved."))
                return redirect("portal:settings_company")
        return self.render_to_response(self.get_context_data(form=form), status=422)
