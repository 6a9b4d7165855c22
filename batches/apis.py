"""Bulk CSV API: template, upload (validation and dry-run preview), list, get, confirm, cancel, errors/results CSV."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from api.params import choice_param
from api.views import TenantAPIView, TenantListAPIView
from core.csv_export import csv_response
from core.parsers import JSONParser
from core.xlsx_export import XLSX_CONTENT_TYPE, xlsx_response
from orders.apis import may_send

from .approvals import batch_approve, batch_reject
from .csvfile import ALL_COLUMNS, TEMPLATE_ROWS
from .lifecycle import batch_cancel, batch_confirm
from .models import BatchKind, BatchStatus
from .people import PEOPLE_TEMPLATE_HEADER, PEOPLE_TEMPLATE_ROWS
from .selectors import (
    available_funds,
    batch_deliveries,
    batch_error_file,
    batch_get,
    batch_list,
    batch_render,
    batch_result_file,
)
from .upload import batch_upload

EXAMPLE_BATCH_ID = "3c1f8a4e-2b7d-4e59-9c0a-5d6e7f8a9b10"
EXAMPLE_BATCH = {
    "id": EXAMPLE_BATCH_ID,
    "kind": "rewards",
    "name": "December thank-yous",
    "status": "validated",
    "program": "spot-awards",
    "file_name": "december.csv",
    "file_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "duplicate_of": None,
    "rows": 1000,
    "valid_rows": 997,
    "error_rows": 3,
    "total_cost": {"USD": "24925.00"},
    "people": None,
    "available_funds": {"USD": "50000.00"},
    "funds_sufficient": True,
    "progress": {"done": 0, "total": 997, "failed": 0, "percent": 0},
    "delivery": None,
    "errors_url": f"/api/v1/batches/{EXAMPLE_BATCH_ID}/errors.csv",
    "results_url": None,
    "failure_reason": None,
    "approval": None,
    "created_at": "2026-11-22T10:00:00Z",
    "confirmed_at": None,
    "completed_at": None,
}
EXAMPLE_PENDING_APPROVAL: dict[str, Any] = {
    "status": "pending",
    "requested_by": "staff:hr@example.com",
    "expires_at": "2026-11-29T10:01:00Z",
    "decided_by": None,
    "decided_at": None,
    "reason": None,
}
EXAMPLE_PENDING_BATCH = {
    **EXAMPLE_BATCH,
    "status": "pending_approval",
    "results_url": f"/api/v1/batches/{EXAMPLE_BATCH_ID}/results.csv",
    "approval": EXAMPLE_PENDING_APPROVAL,
}
EXAMPLE_PROCESSING = {
    **EXAMPLE_BATCH,
    "status": "processing",
    "progress": {"done": 400, "total": 997, "failed": 0, "percent": 40},
    "delivery": {
        "total": 997,
        "delivered": 312,
        "failed": 1,
        "canceled": 0,
        "pending": 684,
        "percent": 31,
        "eta_seconds": 4,
    },
    "results_url": f"/api/v1/batches/{EXAMPLE_BATCH_ID}/results.csv",
    "confirmed_at": "2026-11-22T10:01:00Z",
}


def _problem(code: str, status: int, detail: str, errors: dict | None = None) -> dict:
    body = {"type": f"https://docs.rewards-portal.dev/errors/{code}", "title": code.replace("_", " ").capitalize(),
            "status": status, "detail": detail, "code": code, "retryable": False}  # fmt: skip
    if errors:
        body["errors"] = errors
    return body


PROBLEM_ENCODING = _problem(
    "invalid_encoding", 422,
    'Line 7 is not valid UTF-8 (byte 0xe9 at byte 12 of the line). Save the file as "CSV UTF-8" and upload it again.',
    {"file": ["Line 7 is not valid UTF-8 …"], "line": ["7"]},
)  # fmt: skip
PROBLEM_NO_VALID_ROWS = _problem(
    "no_valid_rows", 422, "None of the 1 row(s) can be sent; see `errors` (row number and column).",
    {"rows[2].recipient_name": ["Cells may not begin with a formula character (= + - @) or a tab or carriage "
                                "return: spreadsheets would run them."]},
)  # fmt: skip
PROBLEM_402 = _problem("insufficient_funds", 402, "Available USD funds do not cover 24925.00 USD.")
PROBLEM_DUPLICATE = _problem(
    "duplicate_file", 409,
    f"This file was already sent as batch {EXAMPLE_BATCH_ID}. Upload (or confirm) with force=true to send it again.",
)  # fmt: skip


class FormBoolean(serializers.BooleanField):
    """A boolean whose default applies when a multipart form omits it (DRF would read a missing box as false)."""

    default_empty_html = empty


class BatchCreateInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="The CSV (UTF-8, with or without BOM); see GET /batches/template.csv"
    )
    dry_run = FormBoolean(default=True, help_text="true (default): validate and preview only; false: also confirm")
    program = serializers.CharField(max_length=60, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    force = FormBoolean(default=False, help_text="Accept a file already sent in another batch")


class BatchConfirmInput(serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text="Send even if the same file was already sent")


class ProgressOutput(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    failed = serializers.IntegerField()
    percent = serializers.IntegerField()


class BatchDeliveryOutput(serializers.Serializer):
    total = serializers.IntegerField(help_text="Valid rows")
    delivered = serializers.IntegerField(help_text="Rewards delivered (or opened, redeemed, expired since)")
    failed = serializers.IntegerField(help_text="Rewards that failed or could not be delivered, and rows that failed")
    canceled = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Rows not yet delivered: waiting, being fulfilled, or not yet created")
    percent = serializers.IntegerField(help_text="Share of the rows no longer pending")
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Estimated seconds until nothing is pending, at the pace so far; null before any"
    )


class BatchOutput(serializers.Serializer):
    """Documentation of the batch shape rendered by batches.selectors.batch_render."""

    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=BatchKind.values)
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=BatchStatus.values)
    program = serializers.CharField(allow_null=True)
    file_name = serializers.CharField()
    file_sha256 = serializers.CharField()
    duplicate_of = serializers.UUIDField(allow_null=True, help_text="An earlier batch with the same file")
    rows = serializers.IntegerField()
    valid_rows = serializers.IntegerField()
    error_rows = serializers.IntegerField()
    total_cost = serializers.DictField(child=serializers.CharField(), help_text="Per funding currency")
    people = serializers.DictField(
        child=serializers.IntegerField(), allow_null=True, help_text='A people import: {"create": n, "update": m}'
    )
    available_funds = serializers.DictField(child=serializers.CharField(), help_text="Per currency of total_cost")
    funds_sufficient = serializers.BooleanField()
    progress = ProgressOutput(help_text="Rows made into rewards (acceptance)")
    delivery = BatchDeliveryOutput(
        allow_null=True, help_text="The rewards reaching their recipients; null until confirmed"
    )
    errors_url = serializers.CharField()
    results_url = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)
    approval = serializers.DictField(allow_null=True, help_text="Maker–checker; null when no approval was needed")
    created_at = serializers.DateTimeField()
    confirmed_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance):
        return batch_render(instance, balances=self.context.get("balances"), deliveries=self.context.get("deliveries"))


CSV_RESPONSE = OpenApiResponse(response=OpenApiTypes.STR, description="text/csv")


class BatchTemplateApi(TenantAPIView):
    @extend_schema(
        operation_id="batches_template",
        summary="Download the bulk CSV template (every column, two example rows)",
        responses={(200, "text/csv"): CSV_RESPONSE},  # was documented as JSON
    )
    def get(self, request):
        return csv_response(
            filename="rewards-batch-template.csv", header=ALL_COLUMNS, rows=TEMPLATE_ROWS, streaming=False
        )


class BatchListCreateApi(TenantListAPIView):
    serializer_class = BatchOutput
    parser_classes = [MultiPartParser, FormParser]

    def get_serializer_context(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation (GET /api/v1/schema/) runs with no tenant schema: reading balances there failed
            # a query on the public schema, which aborts the surrounding transaction (found by security/tests).
            return super().get_serializer_context()
        return {**super().get_serializer_context(), "balances": available_funds()}

    def get_serializer(self, *args, **kwargs):
        if kwargs.get("many") and args:  # a page: every batch's delivery in one query
            page = list(args[0])
            kwargs["context"] = {**self.get_serializer_context(), "deliveries": batch_deliveries(page)}
            args = (page, *args[1:])
        return super().get_serializer(*args, **kwargs)

    def get_queryset(self):
        return batch_list(
            status=choice_param(self.request, "status", BatchStatus.values),
            kind=choice_param(self.request, "kind", BatchKind.values),
        )

    @extend_schema(
        operation_id="batches_list",
        summary="List bulk batches",
        parameters=[OpenApiParameter("status", str, enum=BatchStatus.values),
                    OpenApiParameter("kind", str, enum=BatchKind.values)],
        examples=[
            OpenApiExample(
                "A page of batches", value={"next": None, "previous": None, "results": [EXAMPLE_BATCH]},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="batches_create",
        summary="Upload a bulk CSV: validate it row by row and preview (dry_run=true) or send it (dry_run=false)",
        description="Row numbers are spreadsheet rows: the header is row 1. Rows with errors are listed at "
        "`errors_url` and are not sent; confirming sends the valid rows. Refusals (nothing stored): "
        "`invalid_encoding`, `missing_columns`, `unknown_columns`, `empty_file`, `row_too_large`, "
        "`malformed_csv`, `too_many_rows`, `no_valid_rows` (422), `file_too_large` (413), `duplicate_file` "
        "(409, a file already sent; force=true sends it again), `insufficient_funds` (402, dry_run=false).",
        request={"multipart/form-data": BatchCreateInput},
        responses={
            201: BatchOutput,
            402: OpenApiResponse(description="insufficient_funds (dry_run=false)"),
            409: OpenApiResponse(description="duplicate_file"),
            413: OpenApiResponse(description="file_too_large"),
            422: OpenApiResponse(description="invalid_encoding / missing_columns / empty_file / no_valid_rows / …"),
        },
        examples=[
            OpenApiExample(
                "Dry run", value={"file": "(december.csv)", "dry_run": "true", "program": "spot-awards",
                                  "name": "December thank-yous"}, request_only=True,
            ),
            OpenApiExample("Preview", value=EXAMPLE_BATCH, response_only=True, status_codes=["201"]),
            OpenApiExample("Wrong encoding", value=PROBLEM_ENCODING, response_only=True, status_codes=["422"]),
            OpenApiExample("Formula injection", value=PROBLEM_NO_VALID_ROWS, response_only=True, status_codes=["422"]),
            OpenApiExample("Already sent", value=PROBLEM_DUPLICATE, response_only=True, status_codes=["409"]),
            OpenApiExample("Insufficient funds", value=PROBLEM_402, response_only=True, status_codes=["402"]),
        ],
    )  # fmt: skip
    def post(self, request):
        serializer = BatchCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        batch = batch_upload(
            file=upload,
            file_name=upload.name or "",
            size=upload.size,
            dry_run=data["dry_run"],
            program_slug=data.get("program") or None,
            name=data.get("name", ""),
            force=data["force"],
            api_key_id=request.api_key.key_id,
        )
        return Response(batch_render(batch), status=201)


class BatchDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="batches_retrieve",
        summary="Get a batch (poll `progress` while it is processing)",
        responses={200: BatchOutput},
        examples=[OpenApiExample("Processing", value=EXAMPLE_PROCESSING, response_only=True)],
    )
    def get(self, request, batch_id):
        return Response(batch_render(batch_get(batch_id=batch_id)))


class BatchConfirmApi(TenantAPIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        operation_id="batches_confirm",
        summary="Send a previewed batch: hold its whole cost at once, then workers create the orders in chunks",
        request=BatchConfirmInput,
        responses={
            202: BatchOutput,
            402: OpenApiResponse(description="insufficient_funds (nothing changed)"),
            409: OpenApiResponse(description="duplicate_file / invalid_state"),
        },
        examples=[
            OpenApiExample("Confirm", value={"force": False}, request_only=True),
            OpenApiExample("Confirmed", value={**EXAMPLE_BATCH, "status": "confirmed"}, response_only=True,
                           status_codes=["202"]),
            OpenApiExample("Waiting for approval", value=EXAMPLE_PENDING_BATCH, response_only=True,
                           status_codes=["202"]),
            OpenApiExample("Insufficient funds", value=PROBLEM_402, response_only=True, status_codes=["402"]),
        ],
    )  # fmt: skip
    def post(self, request, batch_id):
        serializer = BatchConfirmInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = batch_confirm(batch_id=batch_id, force=serializer.validated_data["force"], actor=self.actor)
        return Response(batch_render(batch), status=202)


class BatchDecisionInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _decision_schema(operation_id: str, summary: str, example: dict) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description="Needs the `approve` scope. Whoever uploaded or confirmed the batch cannot decide it (403 "
        "`four_eyes_required`); another decision already made is 409 `approval_decided`.",
        request=BatchDecisionInput,
        responses={
            200: BatchOutput,
            403: OpenApiResponse(description="four_eyes_required / the key lacks the approve scope"),
            404: OpenApiResponse(description="no such batch"),
            409: OpenApiResponse(description="approval_decided"),
        },
        examples=[OpenApiExample("Decided", value=example, response_only=True, status_codes=["200"])],
    )


class BatchApproveApi(TenantAPIView):
    required_scope = "approve"

    @_decision_schema("batches_approve", "Approve a batch waiting for approval: the workers start on it", {
        **EXAMPLE_PENDING_BATCH, "status": "confirmed",
        "approval": {**EXAMPLE_PENDING_APPROVAL, "status": "approved", "decided_by": "staff:cfo@example.com",
                     "decided_at": "2026-11-22T11:00:00Z"},
    })  # fmt: skip
    def post(self, request, batch_id):
        return Response(batch_render(batch_approve(batch_id=batch_id, actor=self.actor)))


class BatchRejectApi(TenantAPIView):
    required_scope = "approve"

    @_decision_schema("batches_reject", "Reject a batch waiting for approval; its funds are released", {
        **EXAMPLE_PENDING_BATCH, "status": "canceled",
        "approval": {**EXAMPLE_PENDING_APPROVAL, "status": "rejected", "decided_by": "staff:cfo@example.com",
                     "decided_at": "2026-11-22T11:00:00Z", "reason": "Wrong file"},
    })  # fmt: skip
    def post(self, request, batch_id):
        serializer = BatchDecisionInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        batch = batch_reject(batch_id=batch_id, actor=self.actor, reason=serializer.validated_data["reason"])
        return Response(batch_render(batch))


class BatchCancelApi(TenantAPIView):
    @extend_schema(
        operation_id="batches_cancel",
        summary="Cancel a batch: nothing more is sent and what was held for unsent rows is released",
        request=None,
        responses={200: BatchOutput, 409: OpenApiResponse(description="invalid_state")},
        examples=[OpenApiExample("Canceled", value={**EXAMPLE_BATCH, "status": "canceled"}, response_only=True)],
    )
    def post(self, request, batch_id):
        return Response(batch_render(batch_cancel(batch_id=batch_id)))


def _file(fmt: str, *, filename: str, header: list[str], rows: Iterable[list[str]]):
    """The same header and rows as CSV (streamed) or XLSX (built whole)."""
    if fmt == "xlsx":
        return xlsx_response(filename=f"{filename}.xlsx", header=header, rows=rows)
    return csv_response(filename=f"{filename}.csv", header=header, rows=rows)


class BatchErrorsCsvApi(TenantAPIView):
    @extend_schema(
        operation_id="batches_errors_file",
        summary="The refused rows as uploaded plus an `error` column: fix them and upload the file as it is",
        responses={(200, "text/csv"): CSV_RESPONSE},  # was documented as JSON
    )
    def get(self, request, batch_id, fmt="csv"):
        batch = batch_get(batch_id=batch_id)
        header, rows = batch_error_file(batch=batch)
        return _file(fmt, filename=f"batch-{batch.id}-errors", header=header, rows=rows)


class BatchResultsCsvApi(TenantAPIView):
    @extend_schema(
        operation_id="batches_results_file",
        summary="Each valid row's outcome: row, recipient_name, recipient_email, external_id, reward_id, reference, "
        "status, claim_url (write keys only), reason",
        responses={(200, "text/csv"): CSV_RESPONSE},  # was documented as JSON
    )
    def get(self, request, batch_id, fmt="csv"):
        batch = batch_get(batch_id=batch_id)
        header, rows = batch_result_file(batch=batch, bearer=may_send(request))
        return _file(fmt, filename=f"batch-{batch.id}-results", header=header, rows=rows)


XLSX_RESPONSE = OpenApiResponse(response=OpenApiTypes.BINARY, description="an XLSX workbook (one sheet)")


class BatchErrorsXlsxApi(BatchErrorsCsvApi):
    @extend_schema(
        operation_id="batches_errors_xlsx",
        summary="The error file as an XLSX workbook",
        responses={(200, XLSX_CONTENT_TYPE): XLSX_RESPONSE},
    )
    def get(self, request, batch_id, fmt="xlsx"):
        return super().get(request, batch_id, fmt="xlsx")


class BatchResultsXlsxApi(BatchResultsCsvApi):
    @extend_schema(
        operation_id="batches_results_xlsx",
        summary="The results file as an XLSX workbook",
        responses={(200, XLSX_CONTENT_TYPE): XLSX_RESPONSE},
    )
    def get(self, request, batch_id, fmt="xlsx"):
        return super().get(request, batch_id, fmt="xlsx")


EXAMPLE_PEOPLE_IMPORT = {
    **EXAMPLE_BATCH,
    "kind": "people",
    "name": "hris-export.csv",
    "program": None,
    "file_name": "hris-export.csv",
    "total_cost": {},
    "available_funds": {},
    "people": {"create": 120, "update": 877},
}


class PeopleImportInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="The CSV (UTF-8); see GET /people/import/template.csv for the columns"
    )
    dry_run = FormBoolean(default=True, help_text="true (default): validate and preview only; false: also apply")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class PeopleImportApi(BatchListCreateApi):
    """GET lists the people imports (batches of kind `people`); POST uploads one."""

    def get_queryset(self):
        return batch_list(status=choice_param(self.request, "status", BatchStatus.values), kind=BatchKind.PEOPLE)

    @extend_schema(
        operation_id="people_import_list",
        summary="List people imports",
        parameters=[OpenApiParameter("status", str, enum=BatchStatus.values)],
        examples=[OpenApiExample("A page of imports", value={"next": None, "previous": None,
                                                             "results": [EXAMPLE_PEOPLE_IMPORT]}, response_only=True)],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="people_import",
        summary="Import people from a CSV: upsert by external_id, with a dry-run preview",
        description="A bulk batch of kind `people`: the preview says how many people the file creates and "
        "updates (`people`), rows with errors are at `errors_url`; confirm it with POST /batches/{id}/confirm "
        "(or upload with dry_run=false) and follow `progress` with GET /batches/{id}. Empty cells leave a known "
        "person's field as it is; `attributes.<name>` columns set those attributes.",
        request={"multipart/form-data": PeopleImportInput},
        responses={201: BatchOutput, 413: OpenApiResponse(description="file_too_large"),
                   422: OpenApiResponse(description="invalid_encoding / missing_columns / no_valid_rows / …")},
        examples=[
            OpenApiExample("Dry run", value={"file": "(hris-export.csv)", "dry_run": "true"}, request_only=True),
            OpenApiExample("Preview", value=EXAMPLE_PEOPLE_IMPORT, response_only=True, status_codes=["201"]),
        ],
    )  # fmt: skip
    def post(self, request):
        serializer = PeopleImportInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        batch = batch_upload(
            kind=BatchKind.PEOPLE,
            file=upload,
            file_name=upload.name or "",
            size=upload.size,
            dry_run=data["dry_run"],
            name=data.get("name", ""),
            api_key_id=request.api_key.key_id,
        )
        return Response(batch_render(batch), status=201)


class PeopleImportTemplateApi(TenantAPIView):
    @extend_schema(
        operation_id="people_import_template",
        summary="Download the people import CSV template (every column, two example rows)",
        responses={(200, "text/csv"): CSV_RESPONSE},
    )
    def get(self, request):
        return csv_response(
            filename="people-import-template.csv", header=PEOPLE_TEMPLATE_HEADER, rows=PEOPLE_TEMPLATE_ROWS,
            streaming=False,
        )  # fmt: skip
