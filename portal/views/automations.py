"""Automations pages (admins and managers): the list with what each will send in the next 30 days and its cost,
create from a template (Birthday, Work anniversary, Welcome) or from scratch, change, pause, and one
automation's upcoming sends and run history (what it sent, or why it could not)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from automations.models import Automation, TriggerType
from automations.selectors import (
    automation_get,
    automation_list,
    automation_preview,
    automation_run_list,
    automation_upcoming_summary,
)
from automations.services import automation_create, automation_update
from catalog.selectors import product_list_for_tenant
from core.errors import ApplicationError, NotFoundError
from programs.selectors import program_list

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm

UPCOMING_DAYS = 30
RUNS_SHOWN = 100
TEMPLATES: dict[str, dict[str, Any]] = {
    "birthday": {
        "name": gettext_lazy("Birthday"),
        "trigger_type": TriggerType.BIRTHDAY,
        "message": gettext_lazy("Happy birthday, {first_name}! Enjoy a treat on us."),
    },
    "anniversary": {
        "name": gettext_lazy("Work anniversary"),
        "trigger_type": TriggerType.WORK_ANNIVERSARY,
        "years": "1, 3, 5, 10",
        "message": gettext_lazy("Happy {years}-year anniversary, {first_name}! Thank you for all you do."),
    },
    "welcome": {
        "name": gettext_lazy("Welcome"),
        "trigger_type": TriggerType.WORK_ANNIVERSARY,
        "years": "0",
        "message": gettext_lazy("Welcome aboard, {first_name}! We are glad you are here."),
    },
}
# The service's error keys (API field paths) → this form's fields.
ERROR_FIELDS = {
    "trigger.type": "trigger_type",
    "trigger.years": "years",
    "trigger.attribute": "attribute",
    "trigger.activity_type": "activity_type",
    "reward.product_id": "product_id",
    "reward.amount": "amount",
    "reward.currency": "product_id",
    "reward.delivery_method": "delivery_method",
    "reward.message": "message",
    "audience": "departments",
    "audience.department": "departments",
    "audience.country": "countries",
}


def _automation_or_404(automation_id: Any) -> Automation:
    try:
        return automation_get(automation_id=automation_id)
    except NotFoundError:
        raise Http404("No such automation") from None


def _words(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class AutomationForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    trigger_type = forms.ChoiceField(
        label=gettext_lazy("When"),
        choices=[
            (TriggerType.BIRTHDAY, gettext_lazy("On their birthday")),
            (TriggerType.WORK_ANNIVERSARY, gettext_lazy("On their work anniversary")),
            (TriggerType.DATE_ATTRIBUTE, gettext_lazy("On the anniversary of a date in their fields")),
            (TriggerType.ACTIVITY, gettext_lazy("When an activity is posted for them")),
        ],
    )
    years = forms.CharField(
        label=gettext_lazy("Only these years"),
        required=False,
        help_text=gettext_lazy("Anniversaries: e.g. 1, 5, 10 (0 = their first day); empty: every year"),
    )
    attribute = forms.CharField(
        label=gettext_lazy("Date field"),
        required=False,
        max_length=64,
        help_text=gettext_lazy("The name of the field holding the date, e.g. certified_on"),
    )
    activity_type = forms.CharField(
        label=gettext_lazy("Activity type"), required=False, max_length=100, help_text=gettext_lazy("e.g. deal.closed")
    )
    departments = forms.CharField(
        label=gettext_lazy("Only these departments"),
        required=False,
        help_text=gettext_lazy("Comma-separated; empty: everyone"),
    )
    countries = forms.CharField(
        label=gettext_lazy("Only these countries"),
        required=False,
        help_text=gettext_lazy("Two-letter codes, comma-separated; empty: everyone"),
    )
    product_id = forms.ChoiceField(label=gettext_lazy("Gift"))
    amount = forms.CharField(label=gettext_lazy("Amount"), widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    delivery_method = forms.ChoiceField(
        label=gettext_lazy("Delivered by"),
        choices=[
            ("email", gettext_lazy("Email")),
            ("sms", gettext_lazy("SMS")),
            ("link", gettext_lazy("Claim link by email")),
        ],
    )
    message = forms.CharField(
        label=gettext_lazy("Message"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("May use {first_name}, {name}, {department}, {years}"),
    )
    send_time = forms.CharField(
        label=gettext_lazy("Send at (their local time)"),
        initial="09:00",
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    days_offset = forms.IntegerField(
        label=gettext_lazy("Days after the date"),
        initial=0,
        help_text=gettext_lazy("Negative: before, e.g. -1 for the day before"),
    )
    program = forms.ChoiceField(label=gettext_lazy("Program (budget)"), required=False)
    enabled = forms.BooleanField(label=gettext_lazy("On"), required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        products = product_list_for_tenant().exclude(type="physical").order_by("brand__name", "name")
        self.fields["product_id"].choices = [  # type: ignore[attr-defined]  # a ChoiceField
            (str(p.id), f"{p.brand.name} — {p.name} ({p.currency})") for p in products[:500]
        ]
        self.fields["program"].choices = [  # type: ignore[attr-defined]  # a ChoiceField
            ("", _("No program")),
            *((p.slug, p.name) for p in program_list(is_active=True).order_by("name")),
        ]

    def data_for_service(self) -> dict[str, Any]:
        data = self.cleaned_data
        years = []
        for word in _words(data.get("years", "")):
            if not word.isdigit():
                self.add_error("years", _("Write whole numbers separated by commas."))
                break
            years.append(int(word))
        return {
            "name": data["name"],
            "trigger": {
                "type": data["trigger_type"],
                "years": years,
                "attribute": data.get("attribute") or "",
                "activity_type": data.get("activity_type") or "",
            },
            "audience": {
                "department": _words(data.get("departments", "")),
                "country": [c.upper() for c in _words(data.get("countries", ""))],
            },
            "reward": {
                "product_id": data["product_id"],
                "amount": data["amount"].strip(),
                "delivery_method": data["delivery_method"],
                "message": data.get("message") or "",
            },
            "send_time": data["send_time"][:5],
            "days_offset": data["days_offset"],
            "program": data.get("program") or None,
            "enabled": bool(data.get("enabled")),
        }

    def add_service_errors(self, exc: ApplicationError) -> None:
        for key, errors in exc.errors.items():
            field = ERROR_FIELDS.get(key, key)
            for error in errors:
                self.add_error(field if field in self.fields else None, error)
        if not exc.errors:
            self.add_error(None, exc.detail)


def _cost(automation: Automation, preview: dict[str, Any]) -> dict[str, Any]:
    """The preview's total as amount and unit: money, or a points automation's points and the program's name."""
    total = preview["total"]
    if "points" in total:
        return {"amount": f"{total['points']:,}", "currency": automation.reward_unit}
    return dict(total)


def _initial(automation: Automation) -> dict[str, Any]:
    return {
        "name": automation.name,
        "trigger_type": automation.trigger_type,
        "years": ", ".join(str(y) for y in automation.trigger_years),
        "attribute": automation.trigger_attribute,
        "activity_type": automation.trigger_activity_type,
        "departments": ", ".join(automation.audience.get("department", [])),
        "countries": ", ".join(automation.audience.get("country", [])),
        "product_id": str(automation.product_id),
        "amount": f"{automation.amount:.2f}",
        "delivery_method": automation.delivery_method,
        "message": automation.message,
        "send_time": automation.send_time.strftime("%H:%M"),
        "days_offset": automation.days_offset,
        "program": automation.program.slug if automation.program else "",
        "enabled": automation.enabled,
    }


class AutomationListView(PortalView):
    permission = Perm.AUTOMATIONS
    nav_section = "automations"
    page_title = gettext_lazy("Automations")
    template_name = "portal/automations/list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        rows = []
        for automation in automation_list().order_by("name")[:100]:
            # Cached until the automation, the people or its runs change (or the hour turns): a list of many
            # automations over a large directory no longer reads the directory 30 times per row per view.
            summary = automation_upcoming_summary(automation=automation, now=now, days=UPCOMING_DAYS)
            rows.append({"automation": automation, "upcoming": summary["count"], "cost": _cost(automation, summary)})
        context.update(rows=rows, templates=TEMPLATES, days=UPCOMING_DAYS)
        return context


class AutomationEditView(PortalView):
    """GET/POST /automations/new/?template=… (create) and /automations/<id>/edit/ (change)."""

    permission = Perm.AUTOMATIONS
    nav_section = "automations"
    template_name = "portal/automations/edit.html"

    def _automation(self) -> Automation | None:
        automation_id = self.kwargs.get("automation_id")
        return _automation_or_404(automation_id) if automation_id else None

    def _points_only_over_api(self, request, automation: Automation | None) -> Any:
        """A points automation's reward is not a gift and an amount: this form would turn it into one."""
        if automation is None or automation.points is None:
            return None
        messages.info(request, _("This automation awards points: change it through the API (PATCH /automations)."))
        return redirect("portal:automation", automation_id=automation.id)

    def get(self, request, automation_id=None):
        automation = self._automation()
        if (refused := self._points_only_over_api(request, automation)) is not None:
            return refused
        if automation is not None:
            initial = _initial(automation)
        else:
            template = TEMPLATES.get(request.GET.get("template", ""), {})
            initial = {key: str(value) for key, value in template.items()}
        form = AutomationForm(initial={"send_time": "09:00", "days_offset": 0, "enabled": True, **initial})
        return self.render_to_response(self.get_context_data(form=form, automation=automation))

    def post(self, request, automation_id=None):
        automation = self._automation()
        if (refused := self._points_only_over_api(request, automation)) is not None:
            return refused
        form = AutomationForm(request.POST)
        if form.is_valid():
            data = form.data_for_service()
            if not form.errors:
                try:
                    if automation is None:
                        automation = automation_create(actor=self.actor, data=data)
                        messages.success(request, _("Automation %(name)s created.") % {"name": automation.name})
                    else:
                        automation = automation_update(actor=self.actor, automation=automation, data=data)
                        messages.success(request, _("Automation %(name)s saved.") % {"name": automation.name})
                    return redirect("portal:automation", automation_id=automation.id)
                except ApplicationError as exc:
                    form.add_service_errors(exc)
        return self.render_to_response(self.get_context_data(form=form, automation=automation), status=422)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        automation = kwargs.get("automation")
        context["page_title"] = _("Edit %(name)s") % {"name": automation.name} if automation else _("New automation")
        return context


class AutomationView(PortalView):
    """One automation: who it will send to in the next 30 days (and the cost), and what it sent or why not."""

    permission = Perm.AUTOMATIONS
    nav_section = "automations"
    template_name = "portal/automations/detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        automation = _automation_or_404(kwargs["automation_id"])
        preview = automation_preview(automation=automation, now=timezone.now(), days=UPCOMING_DAYS)
        runs = automation_run_list(automation_id=automation.id).order_by("-created_at")[:RUNS_SHOWN]
        context.update(
            automation=automation,
            page_title=automation.name,
            preview=preview,
            runs=runs,
            days=UPCOMING_DAYS,
            cost=_cost(automation, preview),
        )
        return context


class AutomationToggleView(PortalMixin, View):
    """POST: turn an automation on or off."""

    permission = Perm.AUTOMATIONS

    def post(self, request, automation_id):
        automation = _automation_or_404(automation_id)
        automation = automation_update(
            actor=self.actor, automation=automation, data={"enabled": not automation.enabled}
        )
        if automation.enabled:
            messages.success(request, _("%(name)s is on.") % {"name": automation.name})
        else:
            messages.success(
                request, _("%(name)s is paused: it sends nothing until you turn it on.") % {"name": automation.name}
            )
        return redirect("portal:automation", automation_id=automation.id)
