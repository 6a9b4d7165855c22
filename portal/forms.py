"""Portal forms: parse and validate input only; the views call services."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from accounts.models import Role


class LoginForm(forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class TotpCodeForm(forms.Form):
    code = forms.CharField(
        label="Authentication code",
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "autofocus": True}
        ),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not code.isdigit() or len(code) != 6:
            raise forms.ValidationError("Enter the 6-digit code from your authenticator app.")
        return code


class SecondFactorForm(forms.Form):
    """Sign-in's second step: the authenticator's 6 digits, or one of the person's one-time recovery codes."""

    code = forms.CharField(
        label=gettext_lazy("Authentication code or recovery code"),
        max_length=24,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_code(self) -> str:
        code = "".join(ch for ch in self.cleaned_data["code"] if ch.isalnum())
        if not (code.isdigit() and len(code) == 6) and not (8 <= len(code) <= 16):
            raise forms.ValidationError(
                gettext_lazy("Enter the 6-digit code from your authenticator app, or a recovery code.")
            )
        return code


class ModeForm(forms.Form):
    mode = forms.ChoiceField(choices=[("live", "Live"), ("sandbox", "Sandbox")])
    next = forms.CharField(required=False)


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    name = forms.CharField(max_length=200, required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=200)
    action = forms.CharField(required=False, max_length=120)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned
