"""Points (admins and managers): award points to one person or a whole team (department), see recent awards
and take one back; what the programs' points hold is on this page and on Funds."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from core.errors import ApplicationError
from people.models import Person
from points.bulk import points_award_team
from points.earning import earning_rule_create, earning_rule_delete, earning_rule_get, earning_rule_update
from points.models import EarningPeriod, EarningRule, PointsAward
from points.selectors import points_liabilities
from points.services import points_award_reverse
from programs.models import Program

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm, has_perm
from .orders import money

RECENT = 50


class AwardForm(forms.Form):
    program = forms.ChoiceField(label=gettext_lazy("Program"))
    person = forms.CharField(label=gettext_lazy("Person (employee id or email)"), required=False, max_length=254)
    department = forms.CharField(label=gettext_lazy("…or a whole team (department)"), required=False, max_length=100)
    points = forms.IntegerField(label=gettext_lazy("Points"), min_value=1, max_value=100_000_000)
    reason = forms.CharField(label=gettext_lazy("Reason"), required=False, max_length=300)
    request_id = forms.CharField(widget=forms.HiddenInput, max_length=40)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        programs = Program.objects.filter(is_active=True, points_per_unit__isnull=False).order_by("name")
        self.fields["program"].choices = [(p.slug, f"{p.name} ({p.points_name})") for p in programs]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        person, department = (data.get("person") or "").strip(), (data.get("department") or "").strip()
        if bool(person) == bool(department):
            self.add_error("person", _("Name one person, or a team — not both."))
            return data
        if person:
            found = Person.objects.filter(external_id=person).first() or Person.objects.filter(
                email__iexact=person).order_by("created_at").first()  # fmt: skip
            if found is None:
                self.add_error("person", _("Nobody with this employee id or email."))
            data["people"] = [found] if found else []
        else:
            data["people"] = list(Person.objects.filter(department__iexact=department, status="active"))
            if not data["people"]:
                self.add_error("department", _("Nobody active in this department."))
        return data


class PointsView(PortalView):
    permission = Perm.SEND
    nav_section = "points"
    page_title = gettext_lazy("Points")
    template_name = "portal/points.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", AwardForm(initial={"request_id": uuid.uuid4().hex}))
        context["can_edit_rules"] = has_perm(self.request.user, Perm.PROGRAMS)
        context["awards"] = PointsAward.objects.select_related("program", "person", "transaction")[:RECENT]
        context["liabilities"] = [
            {"l": row, "value": money(row.value, row.program.points_currency)} for row in points_liabilities()
        ]
        return context

    def post(self, request):
        form = AwardForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            program = Program.objects.get(slug=data["program"])
            try:
                result = points_award_team(program=program, people=data["people"], points=data["points"],
                                           reason=data["reason"], request_id=data["request_id"],
                                           actor=self.actor)  # fmt: skip
            except ApplicationError as exc:
                form.add_error(None, exc.detail)
            else:
                if result.awarded:
                    messages.success(request, _("%(points)s %(name)s awarded to %(count)s people.") % {
                        "points": data["points"], "name": program.points_name, "count": result.awarded})  # fmt: skip
                if result.already:
                    messages.info(
                        request, _("%(count)s were awarded already by this form.") % {"count": result.already}
                    )
                for refusal in result.refused[:10]:
                    messages.error(request, refusal)
                return redirect("portal:points")
        return self.render_to_response(self.get_context_data(form=form))


class PointsReverseView(PortalMixin, View):
    permission = Perm.SEND

    def post(self, request, award_id: uuid.UUID):
        if not PointsAward.objects.filter(pk=award_id).exists():
            messages.error(request, _("No such award."))
            return redirect("portal:points")
        _award, points = points_award_reverse(award_id=award_id, reason=request.POST.get("reason", "")[:300],
                                              actor=self.actor)  # fmt: skip
        if points:
            messages.success(request, _("%(points)s points taken back; their money is available again.") % {
                "points": points})  # fmt: skip
        else:
            messages.info(request, _("Nothing left of this award to take back."))
        return redirect("portal:points")


WAYS = [
    ("points_fixed", gettext_lazy("A fixed number of points")),
    ("points_per_unit", gettext_lazy("Points per unit of the activity's amount")),
    ("cashback_percent", gettext_lazy("Cashback: a percentage of the amount, as points")),
]


class EarningRuleForm(forms.Form):
    program = forms.ChoiceField(label=gettext_lazy("Program"))
    activity_type = forms.CharField(
        label=gettext_lazy("Activity type"), max_length=100,
        help_text=gettext_lazy("As your integration posts it, e.g. purchase or deal.closed"),
    )  # fmt: skip
    way = forms.ChoiceField(label=gettext_lazy("Earns"), choices=WAYS)
    value = forms.CharField(label=gettext_lazy("How many / how much"), max_length=20,
                            widget=forms.TextInput(attrs={"inputmode": "decimal"}))  # fmt: skip
    cap_per_activity = forms.IntegerField(label=gettext_lazy("At most per activity (points)"), required=False)
    cap_per_period = forms.IntegerField(label=gettext_lazy("At most per person per period (points)"), required=False)
    period = forms.ChoiceField(label=gettext_lazy("Period"), choices=EarningPeriod.choices, initial="monthly")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        programs = Program.objects.filter(is_active=True, points_per_unit__isnull=False).order_by("name")
        self.fields["program"].choices = [(p.slug, p.name) for p in programs]  # type: ignore[attr-defined]

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        way, value = data["way"], data["value"].strip()
        amount: Any = int(value) if way == "points_fixed" and value.isdigit() else value
        return {"program": data["program"], "activity_type": data["activity_type"], way: amount,
                "cap_per_activity": data.get("cap_per_activity"), "cap_per_period": data.get("cap_per_period"),
                "period": data["period"]}  # fmt: skip


class EarningRulesView(PortalView):
    permission = Perm.PROGRAMS
    nav_section = "points"
    page_title = gettext_lazy("Earning rules")
    template_name = "portal/earning_rules.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", EarningRuleForm())
        rules = list(EarningRule.objects.select_related("program")[:200])
        for rule in rules:  # 2.5000 → 2.5
            number = rule.points_per_unit if rule.points_per_unit is not None else rule.cashback_percent
            rule.rate = f"{number.normalize():f}" if number is not None else ""  # type: ignore[attr-defined]
        context["rules"] = rules
        return context

    def post(self, request):
        form = EarningRuleForm(request.POST)
        if form.is_valid():
            try:
                earning_rule_create(values=form.values(), actor=self.actor)
            except ApplicationError as exc:
                for key, errors in exc.errors.items():
                    field = "value" if key in ("points_fixed", "points_per_unit", "cashback_percent") else key
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                messages.success(request, _("Earning rule added."))
                return redirect("portal:earning_rules")
        return self.render_to_response(self.get_context_data(form=form))


class EarningRuleActionView(PortalMixin, View):
    """POST /points/rules/<id>/<action> with action enable|disable|delete."""

    permission = Perm.PROGRAMS

    def post(self, request, rule_id: uuid.UUID, action: str):
        try:
            rule = earning_rule_get(rule_id=rule_id)
        except ApplicationError:
            messages.error(request, _("No such earning rule."))
            return redirect("portal:earning_rules")
        if action == "delete":
            earning_rule_delete(rule=rule, actor=self.actor)
            messages.success(request, _("Earning rule deleted; points already earned stay."))
        elif action in ("enable", "disable"):
            earning_rule_update(rule=rule, values={"enabled": action == "enable"}, actor=self.actor)
        return redirect("portal:earning_rules")
