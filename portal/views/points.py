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
from points.models import PointsAward
from points.selectors import points_liabilities
from points.services import points_award_reverse
from programs.models import Program

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
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
