"""Reports (admins, finance, managers): spend over a period grouped by program, product, currency, day or
department, and what became of the rewards sent, as server-rendered SVG charts with their tables, and as CSV or
XLSX downloads. The same reads as GET /api/v1/reports/… (orders.reports, from the maintained rollups)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _
from django.views import View

from core.csv_export import csv_response
from core.db_routing import reads_from_replica
from core.errors import ApplicationError
from core.money import format_amount
from core.xlsx_export import xlsx_response
from orders.reports import (
    REPORT_GROUPS,
    report_period,
    rewards_report,
    rewards_report_table,
    spend_report,
    spend_report_table,
)

from ..charts import Bar, bar_chart
from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
from ..templatetags.portal_tags import money

GROUP_LABELS = {
    "program": _("Program"),
    "product": _("Product"),
    "currency": _("Currency"),
    "day": _("Day"),
    "department": _("Department"),
}
FUNNEL_LABELS = {
    "sent": _("Sent"),
    "delivered": _("Delivered"),
    "opened": _("Opened"),
    "clicked": _("Clicked a link"),
    "redeemed": _("Redeemed"),
    "expired": _("Expired"),
    "failed": _("Failed"),
}


class ReportForm(forms.Form):
    since = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(
        required=False, label=_("Group spend by"), choices=[(g, GROUP_LABELS[g]) for g in REPORT_GROUPS]
    )

    def period(self) -> tuple[Any, Any]:
        data = self.cleaned_data
        try:
            return report_period(
                since=data["since"].isoformat() if data.get("since") else None,
                until=data["until"].isoformat() if data.get("until") else None,
            )
        except ApplicationError as exc:
            self.add_error("until", exc.detail)
            raise


class ReportsView(PortalView):
    permission = Perm.REPORTS
    nav_section = "reports"
    page_title = _("Reports")
    template_name = "portal/reports.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = ReportForm(self.request.GET or None)
        context["form"] = form
        if self.request.GET and not form.is_valid():
            return context
        if not self.request.GET:
            form = ReportForm({})
            form.is_valid()
        try:
            since, until = form.period()
        except ApplicationError:
            context["form"] = form
            return context
        group_by = form.cleaned_data.get("group_by") or "program"
        with reads_from_replica():  # DATABASE_REPLICA_URLS: the rollups as of milliseconds ago
            spend = spend_report(since=since, until=until, group_by=group_by)
            funnel = rewards_report(since=since, until=until)
        query = f"since={since.isoformat()}&until={until.isoformat()}&group_by={group_by}"
        discounts, points = _loyalty_reports(since, until, group_by)
        context.update(
            discounts=discounts,
            discount_group_label=GROUP_LABELS[discounts["group_by"]],
            points=points,
            form=form,
            since=since,
            until=until,
            group_label=GROUP_LABELS[group_by],
            spend=spend,
            spend_charts=_spend_charts(spend),
            funnel=funnel,
            funnel_chart=bar_chart(
                chart_id="funnel",
                title=str(_("What became of the rewards sent")),
                bars=[Bar(str(label), funnel[key], f"{funnel[key]:,}") for key, label in FUNNEL_LABELS.items()],
            ),
            rates=[
                (_("Delivery rate"), funnel["rates"]["delivery_rate"]),
                (_("Open rate"), funnel["rates"]["open_rate"]),
                (_("Click rate"), funnel["rates"]["click_rate"]),
                (_("Redemption rate"), funnel["rates"]["redemption_rate"]),
            ],
            query=query,
        )
        return context


def _loyalty_reports(since: Any, until: Any, group_by: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The period's discounts (by the chosen grouping when it is program or product, else by program) and points
    per program (issued, redeemed, expired and reversed in the period; outstanding and liability now)."""
    from fulfillment.discount_reports import DISCOUNT_GROUPS, discount_report
    from orders.reports import report_bounds
    from points.selectors import points_report

    discounts = discount_report(
        since=since, until=until, group_by=group_by if group_by in DISCOUNT_GROUPS else "program"
    )
    start, end = report_bounds(since, until)
    rows = points_report(since=start, until=end)
    for row in rows:
        row["liability"] = format_amount(row["liability"], row["currency"])
    return discounts, {"from": since.isoformat(), "to": until.isoformat(), "results": rows}


def _spend_charts(report: dict[str, Any]) -> list[dict[str, Any]]:
    charts = []
    for total in report["totals"]:
        currency = total["currency"]
        rows = [row for row in report["rows"] if row["currency"] == currency]
        bars = [
            Bar(row["label"], Decimal(row["amount"]), f"{money(Decimal(row['amount']), currency)} {currency}")
            for row in rows
        ]
        charts.append(
            {
                "currency": currency,
                "total": total["amount"],
                "rows": rows,
                "chart": bar_chart(chart_id=f"spend-{currency.lower()}", title=f"Spend, {currency}", bars=bars),
            }
        )
    return charts


class ReportDownloadView(PortalMixin, View):
    """`/reports/<spend|rewards|points|discounts>.<csv|xlsx>?since=&until=&group_by=`: the page's figures as a
    file."""

    permission = Perm.REPORTS

    def get(self, request, report: str, fmt: str):
        form = ReportForm(request.GET)
        form.is_valid()
        try:
            since, until = form.period()
        except ApplicationError:
            since, until = report_period(since=None, until=None)
        if report in ("points", "discounts"):  # kept by their own apps, read from the primary
            from fulfillment.discount_reports import discount_report_table
            from points.selectors import points_report_table

            discounts, points = _loyalty_reports(since, until, form.cleaned_data.get("group_by") or "program")
            header, rows = discount_report_table(discounts) if report == "discounts" else points_report_table(points)
            name = f"discounts-by-{discounts['group_by']}" if report == "discounts" else "points"
        else:
            with reads_from_replica():  # before the audit row below: a write sends later reads to the primary
                if report == "spend":
                    group_by = form.cleaned_data.get("group_by") or "program"
                    data = spend_report(since=since, until=until, group_by=group_by)
                    header, rows = spend_report_table(data)
                    name = f"spend-by-{data['group_by']}"
                else:
                    data = rewards_report(since=since, until=until)
                    header, rows = rewards_report_table(data)
                    name = "rewards"
        self.audit("reports.export", object_type="report", data={"report": name, "format": fmt})
        filename = f"{name}-{since.isoformat()}-{until.isoformat()}.{fmt}"
        if fmt == "xlsx":
            return xlsx_response(filename=filename, header=header, rows=rows, title=name)
        return csv_response(filename=filename, header=header, rows=rows, streaming=False)
