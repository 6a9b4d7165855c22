"""People pages (admins and managers): the directory with search and filters, a person's page (profile, their
rewards, what automations will send them), add and edit, mark as left, and the CSV import with its preview.

Every write is a people service or the batches machinery (the same calls as the API); this module parses
forms and renders the answers, with the service's refusals next to the fields they concern.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from automations.models import TriggerType
from automations.schedule import upcoming as upcoming_sends
from automations.selectors import automation_list
from batches.lifecycle import batch_confirm
from batches.models import BATCH_ACTIVE_STATES, BatchKind, BatchStatus
from batches.people import ATTRIBUTE_PREFIX, PEOPLE_TEMPLATE_HEADER, PEOPLE_TEMPLATE_ROWS
from batches.selectors import batch_list
from batches.upload import batch_upload
from core.csv_export import csv_response
from core.errors import ApplicationError, NotFoundError
from orders.selectors import reward_list
from people.erasure import person_erase
from people.export import person_export
from people.models import Person, PersonStatus
from people.selectors import person_get, person_list
from people.services import person_create, person_update
from points.selectors import points_balances

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
from .bulk import FINISHED, _batch_or_404, _first_row_errors, _progress, _row_errors
from .orders import after_cursor, encode_cursor

PAGE_SIZE = 50
REWARDS_SHOWN = 50


def _person_or_404(person_id: Any) -> Person:
    try:
        return person_get(person_id=person_id)
    except NotFoundError:
        raise Http404("No such person") from None


class PeopleFilterForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=200,
                        help_text=gettext_lazy("Name, email or employee id, or part of it"))  # fmt: skip
    department = forms.ChoiceField(label=gettext_lazy("Department"), required=False)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"), required=False,
        choices=[("", gettext_lazy("Any status")), ("active", gettext_lazy("Active")), ("left", gettext_lazy("Left"))],
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        departments = (
            Person.objects.exclude(department="").order_by("department").values_list("department", flat=True).distinct()
        )
        self.fields["department"].choices = [  # type: ignore[attr-defined]  # a ChoiceField
            ("", _("Any department")),
            *((d, d) for d in departments[:200]),
        ]


class PeopleListView(PortalView):
    permission = Perm.PEOPLE
    nav_section = "people"
    page_title = gettext_lazy("People")
    template_name = "portal/people/list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = PeopleFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        cursor = self.request.GET.get("after")
        people_qs = person_list(q=filters.get("q"), department=filters.get("department") or None,
                                status=filters.get("status") or None)  # fmt: skip
        rows = list(after_cursor(people_qs, cursor)[: PAGE_SIZE + 1])  # type: ignore[arg-type]  # keyset on created_at, id
        query = self.request.GET.copy()
        query.pop("after", None)
        people = rows[:PAGE_SIZE]
        balances = points_balances(person_ids=[person.pk for person in people])
        for person in people:
            person.points_balance = balances.get(person.pk)  # type: ignore[attr-defined]  # shown in the Points column
        context.update(
            form=form,
            people=people,
            next_cursor=encode_cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None,
            is_first_page=not cursor,
            filter_query=query.urlencode(),
            total=Person.objects.count() if not filters else None,
        )
        return context


def _attributes_text(attributes: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {value}" for key, value in attributes.items())


class PersonForm(forms.Form):
    external_id = forms.CharField(label=gettext_lazy("Employee or customer id"), max_length=100)
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    email = forms.CharField(label=gettext_lazy("Email"), max_length=254, required=False,
                            widget=forms.EmailInput())  # fmt: skip
    phone = forms.CharField(label=gettext_lazy("Mobile phone"), max_length=20, required=False,
                            help_text=gettext_lazy("International format, e.g. +60123456789"))  # fmt: skip
    department = forms.CharField(label=gettext_lazy("Department"), max_length=100, required=False)
    manager_email = forms.CharField(label=gettext_lazy("Manager's email"), max_length=254, required=False)
    birthday = forms.CharField(label=gettext_lazy("Birthday"), max_length=10, required=False,
                               help_text=gettext_lazy("MM-DD, or YYYY-MM-DD if you know the year"))  # fmt: skip
    hire_date = forms.CharField(label=gettext_lazy("Hire date"), max_length=10, required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))  # fmt: skip
    timezone = forms.CharField(label=gettext_lazy("Time zone"), max_length=64, required=False,
                               help_text=gettext_lazy("e.g. Asia/Kuala_Lumpur; empty: the company's"))  # fmt: skip
    country = forms.CharField(label=gettext_lazy("Country"), max_length=2, required=False,
                              help_text=gettext_lazy("Two letters, e.g. MY"))  # fmt: skip
    locale = forms.ChoiceField(
        label=gettext_lazy("Language"), required=False,
        choices=[("", gettext_lazy("The company's default")), ("en", "English"), ("ms", "Bahasa Melayu")],
    )  # fmt: skip
    attributes = forms.CharField(
        label=gettext_lazy("Other fields"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("One per line: name = value (custom dates as YYYY-MM-DD)"),
    )  # fmt: skip

    def fields_for_service(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        attributes: dict[str, Any] = {}
        for line in (data.pop("attributes", "") or "").splitlines():
            if not line.strip():
                continue
            key, separator, value = line.partition("=")
            if not separator:
                self.add_error("attributes", _("Write each line as name = value."))
                continue
            attributes[key.strip()] = value.strip()
        data["attributes"] = attributes
        return data

    def add_service_errors(self, exc: ApplicationError) -> None:
        for key, errors in exc.errors.items():
            for error in errors:
                self.add_error(key if key in self.fields else None, error)
        if not exc.errors:
            self.add_error(None, exc.detail)


def _initial(person: Person) -> dict[str, Any]:
    return {
        "external_id": person.external_id, "name": person.name, "email": person.email, "phone": person.phone,
        "department": person.department, "manager_email": person.manager_email, "birthday": person.birthday or "",
        "hire_date": person.hire_date.isoformat() if person.hire_date else "", "timezone": person.timezone,
        "country": person.country, "locale": person.locale, "attributes": _attributes_text(person.attributes),
    }  # fmt: skip


class PersonEditView(PortalView):
    """GET/POST /people/new/ (add) and /people/<id>/edit/ (change)."""

    permission = Perm.PEOPLE
    nav_section = "people"
    template_name = "portal/people/edit.html"

    def _person(self) -> Person | None:
        person_id = self.kwargs.get("person_id")
        return _person_or_404(person_id) if person_id else None

    def get(self, request, person_id=None):
        person = self._person()
        form = PersonForm(initial=_initial(person) if person else {})
        return self.render_to_response(self.get_context_data(form=form, person=person))

    def post(self, request, person_id=None):
        person = self._person()
        form = PersonForm(request.POST)
        if form.is_valid():
            fields = form.fields_for_service()
            if not form.errors:
                try:
                    if person is None:
                        person = person_create(actor=self.actor, fields=fields)
                        messages.success(request, _("%(name)s added.") % {"name": person.name})
                    else:
                        person = person_update(actor=self.actor, person=person, fields=fields)
                        messages.success(request, _("%(name)s saved.") % {"name": person.name})
                    return redirect("portal:person", person_id=person.id)
                except ApplicationError as exc:
                    form.add_service_errors(exc)
        return self.render_to_response(self.get_context_data(form=form, person=person), status=422)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        person = kwargs.get("person")
        context["page_title"] = _("Edit %(name)s") % {"name": person.name} if person else _("Add a person")
        return context


class PersonView(PortalView):
    permission = Perm.PEOPLE
    nav_section = "people"
    template_name = "portal/people/person.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        person = _person_or_404(kwargs["person_id"])
        rewards = list(reward_list(person_id=person.id).order_by("-created_at")[: REWARDS_SHOWN + 1])
        upcoming = []
        if person.status == PersonStatus.ACTIVE:
            for automation in automation_list(enabled=True).exclude(trigger_type=TriggerType.ACTIVITY)[:50]:
                for item in upcoming_sends(automation, timezone.now(), 30, person_id=person.id):
                    upcoming.append({**item, "automation": automation})
        context.update(
            upcoming=sorted(upcoming, key=lambda item: item["send_at"]),
            person=person,
            page_title=person.name,
            rewards=rewards[:REWARDS_SHOWN],
            more_rewards=len(rewards) > REWARDS_SHOWN,
        )
        return context


class PersonStatusView(PortalMixin, View):
    """POST: mark a person as left (automations stop sending them rewards), or active again."""

    permission = Perm.PEOPLE

    def post(self, request, person_id):
        person = _person_or_404(person_id)
        to = PersonStatus.LEFT if request.POST.get("status") == PersonStatus.LEFT else PersonStatus.ACTIVE
        person = person_update(actor=self.actor, person=person, fields={"status": to})
        if to == PersonStatus.LEFT:
            messages.success(request, _("%(name)s is marked as left.") % {"name": person.name})
        else:
            messages.success(request, _("%(name)s is active again.") % {"name": person.name})
        return redirect("portal:person", person_id=person.id)


class PeopleImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy("UTF-8 CSV with a header row; external_id is required, and name for new people."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


class PeopleImportView(PortalView):
    """The import form, the template, and the imports made before."""

    permission = Perm.PEOPLE
    nav_section = "people"
    page_title = gettext_lazy("Import people")
    template_name = "portal/people/import.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", PeopleImportForm())
        context.update(imports=batch_list(kind=BatchKind.PEOPLE)[:20], columns=PEOPLE_TEMPLATE_HEADER[:-1],
                       attribute_prefix=ATTRIBUTE_PREFIX)  # fmt: skip
        return context

    def post(self, request):
        form = PeopleImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = batch_upload(kind=BatchKind.PEOPLE, file=upload, file_name=upload.name or "",
                                     size=upload.size, dry_run=True, created_by_email=request.user.email)  # fmt: skip
            except ApplicationError as exc:
                form.add_error("file", exc.detail)
                for message in _row_errors(exc):
                    form.add_error("file", message)
                return self.render_to_response(self.get_context_data(form=form), status=422)
            self.audit("people.import_upload", object_type="batch", object_id=batch.id,
                       data={"rows": batch.rows, "valid_rows": batch.valid_rows})  # fmt: skip
            return redirect("portal:people_import_batch", batch_id=batch.id)
        return self.render_to_response(self.get_context_data(form=form), status=422)


class PeopleImportBatchView(PortalView):
    """One import: the preview (who is added, who is updated, the rows with errors), then its progress."""

    permission = Perm.PEOPLE
    nav_section = "people"
    template_name = "portal/people/import_batch.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        batch = _batch_or_404(kwargs["batch_id"])
        if batch.kind != BatchKind.PEOPLE:
            raise Http404("Not a people import")
        context.update(
            batch=batch,
            page_title=batch.file_name or _("Import"),
            summary={"create": 0, "update": 0, **batch.summary},
            row_errors=_first_row_errors(batch) if batch.error_rows else [],
            progress=_progress(batch),
            active=batch.status in BATCH_ACTIVE_STATES,
            finished=batch.status in FINISHED and batch.confirmed_at is not None,
            can_confirm=batch.status == BatchStatus.VALIDATED and batch.valid_rows > 0,
        )
        return context


class PeopleImportConfirmView(PortalMixin, View):
    permission = Perm.PEOPLE

    def post(self, request, batch_id):
        batch = _batch_or_404(batch_id)
        if batch.kind != BatchKind.PEOPLE:
            raise Http404("Not a people import")
        try:
            batch = batch_confirm(batch_id=batch.id)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            self.audit("people.import_confirm", object_type="batch", object_id=batch.id,
                       data={"valid_rows": batch.valid_rows})  # fmt: skip
            messages.success(request, _("Import started: %(count)s rows.") % {"count": batch.valid_rows})
        return redirect("portal:people_import_batch", batch_id=batch.id)


class PeopleTemplateCsvView(PortalMixin, View):
    permission = Perm.PEOPLE

    def get(self, request):
        return csv_response(filename="people-import-template.csv", header=PEOPLE_TEMPLATE_HEADER,
                            rows=PEOPLE_TEMPLATE_ROWS, streaming=False)  # fmt: skip


class PersonExportView(PortalMixin, View):
    """GET: everything held about the person as a JSON download (the same document as the API's export)."""

    permission = Perm.PEOPLE

    def get(self, request, person_id):
        person = _person_or_404(person_id)
        self.audit("person.exported", object_type="person", object_id=person.id)
        response = JsonResponse(person_export(person=person), json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="person-{person.external_id[:40]}.json"'
        response["Cache-Control"] = "no-store"
        return response


class PersonEraseView(PortalMixin, View):
    """POST: erase the person (their details here and on their rewards, events and logs; amounts stay)."""

    permission = Perm.PEOPLE

    def post(self, request, person_id):
        person = _person_or_404(person_id)
        if request.POST.get("confirm_external_id", "").strip() != person.external_id:
            messages.error(request, _("Type the employee id to confirm the erasure."))
            return redirect("portal:person", person_id=person.id)
        person_erase(actor=self.actor, person=person)
        messages.success(request, _("The person was erased. Their rewards stay, without their details."))
        return redirect("portal:people")
