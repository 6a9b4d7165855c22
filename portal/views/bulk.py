"""Bulk CSV sending (managers, admins): template, upload with a dry-run preview, confirm, live progress, CSVs.

Every write goes through batches.upload and batches.lifecycle (the same calls as POST /api/v1/batches); this
module only parses the form, renders the service's answer and audits. Pages run on the schema the live/sandbox
switch selects, so a sandbox upload validates against, holds and sends from the sandbox twin.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from django.views import View

from batches.csvfile import ALL_COLUMNS, REQUIRED_COLUMNS, TEMPLATE_ROWS
from batches.lifecycle import batch_cancel, batch_confirm
from batches.models import BATCH_ACTIVE_STATES, Batch, BatchKind, BatchRowError, BatchStatus
from batches.selectors import (
    BATCH_ROWS_PAGE,
    batch_deliveries,
    batch_error_file,
    batch_get,
    batch_list,
    batch_render,
    batch_result_file,
    batch_rows_page,
)
from batches.upload import batch_upload
from core.csv_export import csv_response
from core.errors import ApplicationError, NotFoundError
from core.xlsx_export import xlsx_response
from orders.models import RewardStatus
from orders.search import MIN_TERM_CHARS
from programs.selectors import program_list

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm, has_perm

ERRORS_SHOWN = 50  # row errors listed in the preview; the rest are in the errors CSV
PAGE_SIZE = 25
FINISHED = {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELED}


class BulkUploadForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file (or XLSX)"),
        help_text=_("UTF-8 CSV or an Excel workbook (first sheet), with a header row."),
        widget=forms.ClearableFileInput(
            attrs={"accept": ".csv,text/csv,.xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        ),
    )
    name = forms.CharField(label="Batch name", max_length=200, required=False)
    program = forms.ChoiceField(label="Program", required=False)
    force = forms.BooleanField(
        label="Send it even if this file was already sent",
        required=False,
        help_text="Only tick this when a re-upload of the same file is intended.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(p.slug, p.name) for p in program_list(is_active=True).order_by("name")]
        self.fields["program"].choices = [("", "No program"), *choices]
        if not choices:
            self.fields["program"].widget = forms.HiddenInput()


def _batch_or_404(batch_id: Any) -> Batch:
    try:
        return batch_get(batch_id=batch_id)
    except NotFoundError:
        raise Http404("No such batch") from None


def _progress(batch: Batch) -> dict[str, Any]:
    total = batch.valid_rows
    percent = 100 if total == 0 else int(100 * batch.rows_done / total)
    delivery = batch_deliveries([batch])[batch.pk]
    return {
        "status": batch.status,
        "done": batch.rows_done,
        "total": total,
        "failed": batch.rows_failed,
        "percent": percent,
        "finished": batch.status in FINISHED,
        "delivery": delivery,
        # Rewards still on their way: the page keeps watching them after the rows are all handled.
        "delivering": bool(delivery and delivery["pending"] and batch.status != BatchStatus.CANCELED),
    }


def _first_row_errors(batch: Batch) -> list[tuple[int, str, str]]:
    errors = BatchRowError.objects.filter(batch=batch).order_by("row_number", "id")
    return list(errors.values_list("row_number", "column", "message")[:ERRORS_SHOWN])


ROW_ERROR_KEY = re.compile(r"^rows\[(\d+)\]\.(.+)$")


def _row_errors(exc: ApplicationError) -> list[str]:
    """A refusal's first row errors (`rows[2].amount`) as sentences with row number and column."""
    found = []
    for key, values in exc.errors.items():
        match = ROW_ERROR_KEY.match(key)
        if match:
            row, column = match.groups()
            where = f"Row {row}" if column == "row" else f"Row {row}, column {column}"
            found += [f"{where}: {value}" for value in values]
    return found


class BulkView(PortalView):
    """The upload form with the template link, and the batches sent before."""

    permission = Perm.BULK
    nav_section = "bulk"
    page_title = gettext_lazy("Bulk send")
    template_name = "portal/bulk/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", BulkUploadForm())
        page = Paginator(batch_list(kind=BatchKind.REWARDS), PAGE_SIZE).get_page(self.request.GET.get("page"))
        context.update(page=page, batches=page.object_list, columns=ALL_COLUMNS, required_columns=REQUIRED_COLUMNS)
        return context

    def post(self, request):
        form = BulkUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = batch_upload(
                    file=upload,
                    file_name=upload.name or "",
                    size=upload.size,
                    dry_run=True,
                    program_slug=form.cleaned_data["program"] or None,
                    name=form.cleaned_data["name"],
                    force=form.cleaned_data["force"],
                    created_by_email=request.user.email,
                )
            except ApplicationError as exc:
                form.add_error("file", exc.detail)
                for message in _row_errors(exc):
                    form.add_error("file", message)
                status = exc.status if exc.status in (409, 413) else 422
                return self.render_to_response(self.get_context_data(form=form), status=status)
            self.audit(
                "batch.upload",
                object_type="batch",
                object_id=batch.id,
                data={"file_name": batch.file_name, "rows": batch.rows, "valid_rows": batch.valid_rows},
            )
            return redirect("portal:bulk_batch", batch_id=batch.id)
        return self.render_to_response(self.get_context_data(form=form), status=422)


class BulkBatchView(PortalView):
    """One batch: the dry-run preview (validated), the progress (confirmed/processing), the downloads (done)."""

    permission = Perm.BULK
    nav_section = "bulk"
    template_name = "portal/bulk/batch.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        batch = _batch_or_404(kwargs["batch_id"])
        rendered = batch_render(batch)
        funds = [
            {
                "currency": currency,
                "cost": Decimal(cost),
                "available": Decimal(rendered["available_funds"][currency]),
                "short": max(Decimal(cost) - Decimal(rendered["available_funds"][currency]), Decimal(0)),
            }
            for currency, cost in sorted(batch.total_cost.items())
        ]
        for line in funds:
            line["fits"] = line["short"] == 0
        context.update(
            batch=batch,
            page_title=batch.name or batch.file_name or "Batch",
            funds=funds,
            funds_sufficient=rendered["funds_sufficient"],
            can_confirm=batch.status == BatchStatus.VALIDATED and batch.valid_rows > 0 and rendered["funds_sufficient"],
            row_errors=_first_row_errors(batch) if batch.error_rows else [],
            errors_shown=ERRORS_SHOWN,
            progress=(progress := _progress(batch)),
            active=batch.status in BATCH_ACTIVE_STATES,
            finished=batch.status in FINISHED and batch.confirmed_at is not None,  # a discarded preview has no results
            watching=batch.status in BATCH_ACTIVE_STATES or progress["delivering"],
        )
        if batch.confirmed_at is not None:
            context.update(self._rows(batch))
        return context

    def _rows(self, batch: Batch) -> dict[str, Any]:
        """The batch's rows with their rewards, filtered by the page's form (q, status), a page at a time."""
        form = BatchRowFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        after_row = filters.get("after") or 0
        rows_error = None
        try:
            rows = batch_rows_page(
                batch=batch,
                q=filters.get("q") or "",
                status=filters.get("status") or "",
                after_row=after_row,
                limit=BATCH_ROWS_PAGE + 1,
            )
        except ApplicationError as exc:
            rows, rows_error = [], exc.detail
        query = self.request.GET.copy()
        query.pop("after", None)
        return {
            "row_form": form,
            "row_error": rows_error,
            "batch_rows": rows[:BATCH_ROWS_PAGE],
            "rows_next": rows[BATCH_ROWS_PAGE - 1].row_number if len(rows) > BATCH_ROWS_PAGE else None,
            "rows_query": query.urlencode(),
            "rows_filtered": bool(filters.get("q") or filters.get("status") or after_row),
        }


class BatchRowFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        min_length=MIN_TERM_CHARS,
        max_length=200,
        label=_("Find"),
        help_text=_("Name, email, reference or external id"),
    )
    status = forms.ChoiceField(
        required=False, label=_("Status"), choices=[("", _("Any status")), *RewardStatus.choices]
    )
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


class BulkConfirmView(PortalMixin, View):
    permission = Perm.BULK

    def post(self, request, batch_id):
        batch = _batch_or_404(batch_id)
        try:
            batch = batch_confirm(batch_id=batch.id, actor=self.actor, role=request.user.role)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            self.audit(
                "batch.confirm",
                object_type="batch",
                object_id=batch.id,
                data={"valid_rows": batch.valid_rows, "total_cost": batch.total_cost},
            )
            if batch.status == BatchStatus.PENDING_APPROVAL:
                messages.success(
                    request,
                    _("Funds held. The batch waits for approval by someone else before anything is sent."),
                )
            else:
                messages.success(
                    request,
                    ngettext(
                        "Batch confirmed: funds held, sending %(count)s reward.",
                        "Batch confirmed: funds held, sending %(count)s rewards.",
                        batch.valid_rows,
                    )
                    % {"count": batch.valid_rows},
                )
        return redirect("portal:bulk_batch", batch_id=batch.id)


class BulkCancelView(PortalMixin, View):
    """Discard a preview, or stop a batch being sent: unsent rows are not sent and their funds are released."""

    permission = Perm.BULK

    def post(self, request, batch_id):
        batch = _batch_or_404(batch_id)
        try:
            batch = batch_cancel(batch_id=batch.id)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            self.audit("batch.cancel", object_type="batch", object_id=batch.id, data={"rows_done": batch.rows_done})
            messages.success(request, gettext("Batch canceled: nothing more is sent from it."))
        return redirect("portal:bulk_batch", batch_id=batch.id)


class BulkProgressView(PortalMixin, View):
    """The small JSON the progress bar polls."""

    permission = Perm.BULK

    def get(self, request, batch_id):
        response = JsonResponse(_progress(_batch_or_404(batch_id)))
        response["Cache-Control"] = "no-store"
        return response


def _file(fmt: str, *, filename: str, header: list[str], rows: Any):
    """CSV (streamed) or XLSX (built whole): the same header and rows."""
    if fmt == "xlsx":
        return xlsx_response(filename=f"{filename}.xlsx", header=header, rows=rows)
    return csv_response(filename=f"{filename}.csv", header=header, rows=rows, streaming=not isinstance(rows, list))


class BulkErrorsCsvView(PortalMixin, View):
    """The refused rows as uploaded plus an `error` column: fixed, the file uploads again as it is."""

    permission = Perm.BULK

    def get(self, request, batch_id, fmt="csv"):
        batch = _batch_or_404(batch_id)
        header, rows = batch_error_file(batch=batch)
        return _file(fmt, filename=f"batch-{batch.id}-errors", header=header, rows=rows)


class BulkResultsCsvView(PortalMixin, View):
    permission = Perm.BULK

    def get(self, request, batch_id, fmt="csv"):
        batch = _batch_or_404(batch_id)
        if batch.status in (BatchStatus.VALIDATING, BatchStatus.VALIDATED):
            raise Http404("Results exist once the batch is confirmed")
        # Claim links are bearer links to the gifts: only for roles that may send one by one.
        header, rows = batch_result_file(batch=batch, bearer=has_perm(request.user, Perm.SEND))
        return _file(fmt, filename=f"batch-{batch.id}-results", header=header, rows=rows)


class BulkTemplateCsvView(PortalMixin, View):
    permission = Perm.BULK

    def get(self, request, fmt="csv"):
        return _file(fmt, filename="rewards-batch-template", header=ALL_COLUMNS, rows=_template_rows())


def _template_rows() -> list[list[str]]:
    """The template's example rows, with SKUs from this tenant's own catalogue where it has such products."""
    from catalog.selectors import product_list_for_tenant

    rows = [list(row) for row in TEMPLATE_ROWS]
    sku_column = ALL_COLUMNS.index("sku")
    for row, product_type in zip(rows, ("digital", "physical"), strict=True):
        product = product_list_for_tenant(type=product_type).first()
        if product is not None:
            row[sku_column] = product.sku
    return rows
