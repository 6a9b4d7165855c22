"""Programs (admins and managers): the tenant's reward programs, created and changed here (budget, curation,
branding, language, claim links — claim-by days, expiry, reminders, verification — and the optional points
currency), with the service's refusals shown next to each field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from catalog.images import LOGO_MAX_BYTES, image_store, logo_path
from catalog.selectors import product_list_for_tenant
from core.errors import ApplicationError
from core.money import format_amount
from fulfillment.delivery import program_email_preview
from programs.models import BudgetPeriod, Program
from programs.selectors import program_list
from programs.services import LOCALES, program_create, program_update

from ..fields import AmountField
from ..mixins import PortalView
from ..permissions import Perm

# The service's error keys (API field paths) → this form's fields.
ERROR_FIELDS = {
    "points.name": "points_name",
    "points.points_per_unit": "points_per_unit",
    "points.currency": "points_currency",
    "points.expire_after_days": "points_expire_after_days",
    "points.self_redeem": "points_self_redeem",
    "points": "points_enabled",
    "branding": "logo",
    "reminders": "reminders_after_days",
}


def _days_list(text: str) -> list[int]:
    """ "3, 7" → [3, 7] (the service checks the range); anything else is a field error."""
    parts = [part.strip() for part in (text or "").replace(";", ",").split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise forms.ValidationError(gettext_lazy("Whole numbers of days, separated by commas (e.g. 3, 7)."))
    return [int(part) for part in parts]


class ProgramForm(forms.Form):
    slug = forms.CharField(label=gettext_lazy("Short name (in links and the API)"), max_length=60)
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200, required=False)
    budget_amount = AmountField(label=gettext_lazy("Budget per period"), required=False)  # "5,000" as typed
    budget_currency = forms.CharField(label=gettext_lazy("Budget currency"), max_length=3, required=False)
    budget_period = forms.ChoiceField(label=gettext_lazy("Budget period"), choices=BudgetPeriod.choices,
                                      initial=BudgetPeriod.NONE)  # fmt: skip
    allowed_product_ids = forms.MultipleChoiceField(
        label=gettext_lazy("Products offered"), required=False,
        help_text=gettext_lazy("None chosen: every product your catalogue allows."),
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )  # fmt: skip
    default_message = forms.CharField(label=gettext_lazy("Default message"), required=False, widget=forms.Textarea)
    sender_name = forms.CharField(label=gettext_lazy("Sender name"), max_length=200, required=False)
    logo = forms.FileField(
        label=gettext_lazy("Logo"), required=False,
        help_text=gettext_lazy("PNG, JPEG or WebP, at most 512 KB. Shown in emails and on the gift page."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
    )  # fmt: skip
    remove_logo = forms.BooleanField(label=gettext_lazy("Remove the logo"), required=False)
    primary_color = forms.CharField(label=gettext_lazy("Brand colour"), required=False,
                                    widget=forms.TextInput(attrs={"placeholder": "#1A73E8"}))  # fmt: skip
    default_locale = forms.ChoiceField(
        label=gettext_lazy("Language"), required=False,
        choices=[("", gettext_lazy("The company's default")), ("en", "English"), ("ms", "Bahasa Melayu")],
    )  # fmt: skip
    claim_days = forms.IntegerField(
        label=gettext_lazy("Days to claim a link"), required=False, min_value=1,
        help_text=gettext_lazy("Empty: 365 days. Counted from when the link is sent; new links only."),
    )  # fmt: skip
    on_expiry = forms.ChoiceField(
        label=gettext_lazy("When a link expires unclaimed"),
        choices=[("release", gettext_lazy("Void the code and return its value to our funds")),
                 ("keep", gettext_lazy("Keep the code valid (no money comes back)"))],
        initial="release", required=False,
    )  # fmt: skip
    reminders_after_days = forms.CharField(
        label=gettext_lazy("Remind after (days)"), required=False,
        help_text=gettext_lazy("Days after sending, e.g. 3, 7. Empty: no such reminders."),
    )  # fmt: skip
    reminders_before_expiry_days = forms.CharField(
        label=gettext_lazy("Remind before expiry (days)"), required=False,
        help_text=gettext_lazy("Days before the link expires, e.g. 7."),
    )  # fmt: skip
    verification = forms.ChoiceField(
        label=gettext_lazy("Verify new devices"),
        choices=[("off", gettext_lazy("Off: the link alone opens the gift")),
                 ("email", gettext_lazy("A one-time code by email")),
                 ("sms", gettext_lazy("A one-time code by SMS"))],
        initial="off", required=False,
        help_text=gettext_lazy("Before a code shows in a browser the link has not seen."),
    )  # fmt: skip
    track_email_opens = forms.BooleanField(
        label=gettext_lazy("Count email opens"), required=False, initial=True,
        help_text=gettext_lazy("Reward emails carry a tiny image, and their links to the brand's shop pass "
                               "through us: either marks the reward opened in your reports. Nothing about the "
                               "reader is kept. Off: no image, and links go straight to the shop."),
    )  # fmt: skip
    points_enabled = forms.BooleanField(label=gettext_lazy("This program awards points"), required=False)
    points_name = forms.CharField(label=gettext_lazy("Points are called"), required=False,
                                  widget=forms.TextInput(attrs={"placeholder": "Kudos"}))  # fmt: skip
    points_per_unit = forms.IntegerField(
        label=gettext_lazy("Points per unit of currency"), required=False,
        help_text=gettext_lazy("e.g. 100 points = 1.00 USD. Fixed once set."),
    )  # fmt: skip
    points_currency = forms.CharField(label=gettext_lazy("Funding currency"), max_length=3, required=False)
    points_expire_after_days = forms.IntegerField(label=gettext_lazy("Points expire after (days)"), required=False,
                                                  help_text=gettext_lazy("Empty: never."))  # fmt: skip
    points_self_redeem = forms.BooleanField(label=gettext_lazy("Recipients may spend points themselves"),
                                            required=False)  # fmt: skip

    def __init__(self, *args: Any, editing: Program | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        products = product_list_for_tenant().order_by("brand__name", "name")
        self.fields["allowed_product_ids"].choices = [  # type: ignore[attr-defined]  # a MultipleChoiceField
            (str(product.id), f"{product.brand.name} — {product.name} ({product.currency})") for product in products
        ]
        if editing is not None:
            del self.fields["slug"]
            if editing.has_points:  # the rate and the funding currency are fixed once set
                for name in ("points_per_unit", "points_currency"):
                    self.fields[name].disabled = True

    def clean_reminders_after_days(self) -> list[int]:
        return _days_list(self.cleaned_data.get("reminders_after_days", ""))

    def clean_reminders_before_expiry_days(self) -> list[int]:
        return _days_list(self.cleaned_data.get("reminders_before_expiry_days", ""))

    def clean_logo(self) -> str:
        """An uploaded logo is stored at once (catalog.images checks it): its key, or the program's current one."""
        upload = self.cleaned_data.get("logo")
        if not upload:
            return ""
        try:
            return image_store(data=upload.read(LOGO_MAX_BYTES + 1)).key
        except ApplicationError as exc:
            raise forms.ValidationError(exc.detail) from None

    def changes(self, *, current_logo: str = "") -> dict[str, Any]:
        """The service's arguments (the API's shape) from the cleaned form."""
        data = self.cleaned_data
        points = None
        if data.get("points_enabled"):
            points = {
                "name": data.get("points_name") or "",
                "points_per_unit": data.get("points_per_unit"),
                "currency": data.get("points_currency") or "",
                "expire_after_days": data.get("points_expire_after_days"),
                "self_redeem": bool(data.get("points_self_redeem")),
            }
        branding = {key: data[key].strip() for key in ("primary_color",) if data.get(key, "").strip()}
        logo = data.get("logo") or ("" if data.get("remove_logo") else current_logo)
        if logo:
            branding["logo"] = logo
        return {
            "name": data.get("name") or "",
            "budget": {
                "amount": data.get("budget_amount") or None,
                "currency": data.get("budget_currency") or "",
                "period": data.get("budget_period") or BudgetPeriod.NONE,
            },
            "allowed_product_ids": data.get("allowed_product_ids") or [],
            "default_message": data.get("default_message") or "",
            "sender_name": data.get("sender_name") or "",
            "branding": branding,
            "default_locale": data.get("default_locale") or "",
            "points": points,
            "claim_days": data.get("claim_days"),
            "on_expiry": data.get("on_expiry") or "release",
            "reminders": {
                key: days
                for key, days in (
                    ("after_days", data.get("reminders_after_days") or []),
                    ("before_expiry_days", data.get("reminders_before_expiry_days") or []),
                )
                if days
            },
            "verification": data.get("verification") or "off",
            "track_email_opens": bool(data.get("track_email_opens")),
        }

    def add_service_errors(self, exc: ApplicationError) -> None:
        for key, errors in exc.errors.items():
            field = ERROR_FIELDS.get(key, key)
            for error in errors:
                self.add_error(field if field in self.fields else None, error)
        if not exc.errors:
            self.add_error(None, exc.detail)


def _initial(program: Program) -> dict[str, Any]:
    return {
        "name": program.name,
        "budget_amount": format_amount(program.budget_amount, program.budget_currency)
        if program.budget_amount is not None
        else "",
        "budget_currency": program.budget_currency,
        "budget_period": program.budget_period,
        "allowed_product_ids": [str(pk) for pk in program.allowed_product_ids],
        "default_message": program.default_message,
        "sender_name": program.sender_name,
        "primary_color": program.branding.get("primary_color", ""),
        "default_locale": program.default_locale,
        "points_enabled": program.has_points,
        "points_name": program.points_name,
        "points_per_unit": program.points_per_unit,
        "points_currency": program.points_currency,
        "points_expire_after_days": program.points_expire_after_days,
        "points_self_redeem": program.points_self_redeem,
        "claim_days": program.claim_days,
        "on_expiry": program.on_expiry,
        "reminders_after_days": ", ".join(str(day) for day in (program.reminders or {}).get("after_days", [])),
        "reminders_before_expiry_days": ", ".join(
            str(day) for day in (program.reminders or {}).get("before_expiry_days", [])
        ),
        "verification": program.claim_verification,
        "track_email_opens": program.track_email_opens,
    }


class ProgramListView(PortalView):
    permission = Perm.PROGRAMS
    nav_section = "programs"
    page_title = gettext_lazy("Programs")
    template_name = "portal/programs/list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["programs"] = program_list()[:200]
        return context


class ProgramEditView(PortalView):
    """GET/POST /programs/new/ (create) and /programs/<slug>/ (change)."""

    permission = Perm.PROGRAMS
    nav_section = "programs"
    template_name = "portal/programs/edit.html"

    def _program(self) -> Program | None:
        slug = self.kwargs.get("slug")
        if slug is None:
            return None
        program = Program.objects.filter(slug=slug).first()
        if program is None:
            raise Http404("No such program")
        return program

    def get(self, request, slug: str | None = None):
        program = self._program()
        form = ProgramForm(editing=program, initial=_initial(program) if program else {})
        return self.render_to_response(self.get_context_data(form=form, program=program))

    def post(self, request, slug: str | None = None):
        program = self._program()
        form = ProgramForm(request.POST, request.FILES, editing=program, initial=_initial(program) if program else {})
        if form.is_valid():
            changes = form.changes(current_logo=str(program.branding.get("logo") or "") if program else "")
            try:
                if program is None:
                    budget = changes.pop("budget")
                    program = program_create(
                        slug=form.cleaned_data["slug"], **changes, budget_amount=budget["amount"],
                        budget_currency=budget["currency"], budget_period=budget["period"], actor=self.actor,
                    )  # fmt: skip
                    messages.success(request, _("Program %(name)s created.") % {"name": program.name})
                else:
                    program = program_update(program=program, changes=changes, actor=self.actor)
                    messages.success(request, _("Program %(name)s saved.") % {"name": program.name})
                return redirect("portal:programs")
            except ApplicationError as exc:
                form.add_service_errors(exc)
        return self.render_to_response(self.get_context_data(form=form, program=program), status=200)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        program = kwargs.get("program")
        context["page_title"] = _("Edit %(name)s") % {"name": program.name} if program else _("New program")
        context["locales"] = LOCALES
        if program is not None:
            # The program's email as recipients get it, in each language the platform speaks.
            context["email_previews"] = [
                {"language": name, "code": code, "subject": subject, "html": html}
                for code, name in settings.LANGUAGES
                for subject, html in [program_email_preview(program=program, locale=code)]
            ]
            context["logo_src"] = logo_path(str(program.branding.get("logo") or ""))
        return context
