"""Reports API: spend per program, product, currency, day or department, and the rewards funnel, over a period
of days in the company's time zone, as JSON, CSV or XLSX (`format=`). Read from the maintained rollups
(orders.rollups), never by scanning rewards; any key with the `read` scope may read them (aggregates only: no
recipient, no code)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from api.views import TenantAPIView
from core.csv_export import csv_response
from core.db_routing import reads_from_replica
from core.errors import ApplicationError
from core.xlsx_export import XLSX_CONTENT_TYPE, xlsx_response

from .reports import (
    REPORT_GROUPS,
    report_period,
    rewards_report,
    rewards_report_table,
    spend_report,
    spend_report_table,
)

FORMATS = ("json", "csv", "xlsx")
PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from", OpenApiTypes.DATE, description="First day, in the company's time zone (default: 29 days before `to`)"
    ),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (company's time zone), included (default: today)"),
    OpenApiParameter("format", str, enum=FORMATS, description="json (default), csv or xlsx"),
]
# JSON by default; `format=csv` and `format=xlsx` answer with the same figures as a file.
REPORT_RESPONSES = {
    (200, "application/json"): OpenApiTypes.OBJECT,
    (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="format=csv"),
    (200, XLSX_CONTENT_TYPE): OpenApiResponse(response=OpenApiTypes.BINARY, description="format=xlsx"),
}
SPEND_EXAMPLE = {
    "from": "2026-11-01",
    "to": "2026-11-30",
    "group_by": "program",
    "rows": [
        {"key": "3", "label": "Spot awards", "currency": "USD", "amount": "1250.00", "captures": 50, "refunds": 0},
        {"key": None, "label": "No program", "currency": "USD", "amount": "75.00", "captures": 3, "refunds": 0},
    ],
    "totals": [{"currency": "USD", "amount": "1325.00"}],
}
REWARDS_EXAMPLE = {
    "from": "2026-11-01",
    "to": "2026-11-30",
    "created": 120,
    "sent": 118,
    "delivered": 115,
    "opened": 80,
    "clicked": 34,
    "redeemed": 61,
    "expired": 2,
    "failed": 3,
    "rates": {
        "delivery_rate": 0.9746,
        "open_rate": 0.6957,
        "click_rate": 0.2957,
        "redemption_rate": 0.5304,
        "failure_rate": 0.0254,
    },
    "by_status": {"pending": 2, "delivered": 33, "opened": 19, "redeemed": 61, "expired": 2, "failed": 3},
}


class _QueryFormatIsOurs(DefaultContentNegotiation):
    """`format=csv|xlsx` picks the file these views build, not a DRF renderer (DRF would answer 404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _format(request: Any) -> str:
    value = (request.query_params.get("format") or "json").lower()
    if value not in FORMATS:
        raise ApplicationError(
            f"format must be one of {', '.join(FORMATS)}.",
            code="validation_error",
            status=400,
            errors={"format": [", ".join(FORMATS)]},
        )
    return value


def _respond(request: Any, *, report: dict[str, Any], table: tuple[list[str], list[list[object]]], name: str):
    fmt = _format(request)
    if fmt == "json":
        return Response(report)
    # The days (an instant's date part; a report without bounds covers all time up to now).
    filename = f"{name}-{str(report.get('from') or 'start')[:10]}-{str(report.get('to') or 'now')[:10]}.{fmt}"
    header, rows = table
    if fmt == "csv":
        return csv_response(filename=filename, header=header, rows=rows, streaming=False)
    return xlsx_response(filename=filename, header=header, rows=rows, title=name)


class SpendReportApi(TenantAPIView):
    content_negotiation_class = _QueryFormatIsOurs

    @extend_schema(
        operation_id="reports_spend",
        summary="Spend over a period (captures less refunds), grouped",
        parameters=[
            *PERIOD_PARAMETERS,
            OpenApiParameter("group_by", str, enum=REPORT_GROUPS, description="Default: program"),
        ],
        responses=REPORT_RESPONSES,
        examples=[OpenApiExample("Spend by program", value=SPEND_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        _format(request)  # a bad format is refused before any read
        since, until = report_period(since=request.query_params.get("from"), until=request.query_params.get("to"))
        with reads_from_replica():  # DATABASE_REPLICA_URLS: the rollups as of milliseconds ago
            report = spend_report(since=since, until=until, group_by=request.query_params.get("group_by") or "program")
        return _respond(request, report=report, table=spend_report_table(report), name=f"spend-by-{report['group_by']}")


class RewardsReportApi(TenantAPIView):
    content_negotiation_class = _QueryFormatIsOurs

    @extend_schema(
        operation_id="reports_rewards",
        summary="What became of the rewards created over a period: sent, delivered, opened, redeemed, …",
        parameters=PERIOD_PARAMETERS,
        responses=REPORT_RESPONSES,
        examples=[OpenApiExample("Rewards funnel", value=REWARDS_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        _format(request)
        since, until = report_period(since=request.query_params.get("from"), until=request.query_params.get("to"))
        with reads_from_replica():
            report = rewards_report(since=since, until=until)
        return _respond(request, report=report, table=rewards_report_table(report), name="rewards")


class ReportApi(TenantAPIView):
    """A report another app keeps (points, discounts) with the same `format=json|csv|xlsx` files as these."""

    content_negotiation_class = _QueryFormatIsOurs

    def respond(self, request: Any, *, report: dict[str, Any], table: tuple[list[str], list[list[object]]], name: str):
        return _respond(request, report=report, table=table, name=name)

    def check_format(self, request: Any) -> None:
        """Refuse a bad `format` before any read."""
        _format(request)
