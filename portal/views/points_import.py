"""Points from a CSV in the portal (admins and managers): upload with a program, a preview (who gets how many
points, what their value holds, every row with an error), confirm (one hold for the file's value; held for a
second person when the approval policy asks), then the progress. The bulk machinery's kind `points`
(points.bulk_csv), as POST /api/v1/points/awards/import."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import BigIntegerField, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from batches.lifecycle import batch_cancel, batch_confirm
from batches.models import BATCH_ACTIVE_STATES, Batch, BatchKind, BatchRow, BatchStatus
from batches.selectors import batch_list, batch_render
from batches.upload import batch_upload
from core.csv_export import csv_response
from core.errors import ApplicationError
from points.bulk_csv import COLUMNS
from programs.models import Program

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
from .bulk import FINISHED, _batch_or_404, _first_row_errors, _progress, _row_errors

TEMPLATE_ROWS = [["E-1001", "500", "Q4 launch", "q4-launch-E-1001"], ["E-1002", "250", "", ""]]


class PointsImportForm(forms.Form):
    program = forms.ChoiceField(label=gettext_lazy("Program"))
    file = forms.FileField(
        label=gettext_lazy("CSV file (or XLSX)"),
        help_text=gettext_lazy("A header row, then one award per row."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,.xlsx"}),
    )
    name = forms.CharField(label=gettext_lazy("Name (optional)"), max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        programs = Program.objects.filter(is_active=True, points_per_unit__isnull=False).order_by("name")
        self.fields["program"].choices = [(p.slug, f"{p.name} ({p.points_name})") for p in programs]  # type: ignore[attr-defined]


def _points_batch_or_404(batch_id: Any) -> Batch:
    batch = _batch_or_404(batch_id)
    if batch.kind != BatchKind.POINTS:
        raise Http404("Not a points import")
    return batch


class PointsImportView(PortalView):
    """The upload form, the template, and the points files sent before."""

    permission = Perm.SEND
    nav_section = "points"
    page_title = gettext_lazy("Import points")
    template_name = "portal/points/import.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", PointsImportForm())
        context.update(imports=batch_list(kind=BatchKind.POINTS).select_related("program")[:20], columns=COLUMNS)
        return context

    def post(self, request):
        form = PointsImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = batch_upload(
                    kind=BatchKind.POINTS, file=upload, file_name=upload.name or "", size=upload.size, dry_run=True,
                    name=form.cleaned_data["name"], program_slug=form.cleaned_data["program"],
                    created_by_email=request.user.email,
                )  # fmt: skip
            except ApplicationError as exc:
                form.add_error("file", exc.detail)
                for message in _row_errors(exc):
                    form.add_error("file", message)
                return self.render_to_response(self.get_context_data(form=form), status=422)
            self.audit("points.import_upload", object_type="batch", object_id=batch.id,
                       data={"rows": batch.rows, "valid_rows": batch.valid_rows})  # fmt: skip
            return redirect("portal:points_import_batch", batch_id=batch.id)
        return self.render_to_response(self.get_context_data(form=form), status=422)


class PointsImportBatchView(PortalView):
    """One points file: the preview (people, points, their value against the funds), its errors, then progress."""

    permission = Perm.SEND
    nav_section = "points"
    template_name = "portal/points/import_batch.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        batch = _points_batch_or_404(kwargs["batch_id"])
        rendered = batch_render(batch)
        funds = [
            {"currency": currency, "cost": Decimal(cost), "available": Decimal(rendered["available_funds"][currency])}
            for currency, cost in sorted(batch.total_cost.items())
        ]
        for line in funds:
            line["short"] = max(line["cost"] - line["available"], Decimal(0))
        summed = BatchRow.objects.filter(batch=batch).aggregate(total=Sum(Cast(KT("data__points"), BigIntegerField())))
        points = summed["total"] or 0
        context.update(
            batch=batch,
            page_title=batch.name or batch.file_name or _("Points import"),
            program=batch.program,
            points=points,
            funds=funds,
            can_confirm=batch.status == BatchStatus.VALIDATED and batch.valid_rows > 0 and rendered["funds_sufficient"],
            can_discard=batch.status == BatchStatus.VALIDATED,
            row_errors=_first_row_errors(batch) if batch.error_rows else [],
            progress=_progress(batch),
            waiting=batch.status == BatchStatus.PENDING_APPROVAL,
            active=batch.status in BATCH_ACTIVE_STATES,
            finished=batch.status in FINISHED and batch.confirmed_at is not None,
        )
        return context


class PointsImportConfirmView(PortalMixin, View):
    permission = Perm.SEND

    def post(self, request, batch_id):
        batch = _points_batch_or_404(batch_id)
        try:
            batch = batch_confirm(batch_id=batch.id, actor=self.actor, role=request.user.role)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            self.audit("points.import_confirm", object_type="batch", object_id=batch.id,
                       data={"valid_rows": batch.valid_rows, "total_cost": batch.total_cost})  # fmt: skip
            if batch.status == BatchStatus.PENDING_APPROVAL:
                messages.success(request, _("Funds held. These points wait for approval by someone else."))
            else:
                messages.success(request, _("Confirmed: funds held, awarding %(count)s rows.") % {
                    "count": batch.valid_rows})  # fmt: skip
        return redirect("portal:points_import_batch", batch_id=batch.id)


class PointsImportDiscardView(PortalMixin, View):
    """Drop a preview: nothing was held or awarded."""

    permission = Perm.SEND

    def post(self, request, batch_id):
        batch = _points_batch_or_404(batch_id)
        if batch.status != BatchStatus.VALIDATED:
            messages.error(request, _("Only a preview can be discarded."))
            return redirect("portal:points_import_batch", batch_id=batch.id)
        batch_cancel(batch_id=batch.id)
        self.audit("points.import_discard", object_type="batch", object_id=batch.id, data={})
        messages.success(request, _("Preview discarded: nothing was awarded."))
        return redirect("portal:points_import")


class PointsTemplateCsvView(PortalMixin, View):
    permission = Perm.SEND

    def get(self, request):
        return csv_response(filename="points-import-template.csv", header=COLUMNS, rows=TEMPLATE_ROWS, streaming=False)
