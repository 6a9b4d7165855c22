"""Discount usage over a period, per program or per product: codes issued to recipients, uses the merchants
reported, and the merchants' reported order amounts (`GET /api/v1/reports/discounts`, the portal's Reports page).

Issued: discount rewards first delivered (the code reached the recipient, or the API caller) on the period's days.
Redeemed: the merchants' redemption reports whose time falls on those days. Days are the company's (orders.reports).
Two GROUP BYs: discount rewards through their partial index on delivered_at (orders migration 0013), redemptions
through theirs on redeemed_at; never a scan of every reward.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Sum
from django.utils.translation import gettext as _

from core.errors import ApplicationError
from core.money import format_amount
from orders.models import Reward
from orders.reports import report_bounds, report_zone

from .discounts import DISCOUNT_TYPE
from .models import DiscountRedemption

DISCOUNT_GROUPS = ("program", "product")


def discount_report(*, since: date, until: date, group_by: str = "program") -> dict[str, Any]:
    """Issued and redeemed discounts on local days [since, until], per program or product, with the merchants'
    reported order amounts per currency, and totals."""
    if group_by not in DISCOUNT_GROUPS:
        raise ApplicationError(
            _("group_by must be one of %(choices)s.") % {"choices": ", ".join(DISCOUNT_GROUPS)},
            code="validation_error",
            status=400,
            errors={"group_by": [", ".join(DISCOUNT_GROUPS)]},
        )
    start, end = report_bounds(since, until)
    key = "order__program_id" if group_by == "program" else "product_id"
    issued = (
        Reward.objects.filter(product_snapshot__type=DISCOUNT_TYPE, delivered_at__gte=start, delivered_at__lt=end)
        .values_list(key)
        .annotate(n=Count("id"))
        .order_by()
    )
    rows: dict[str, dict[str, Any]] = {}

    def row(value: Any) -> dict[str, Any]:
        name = str(value) if value is not None else ""
        return rows.setdefault(name, {"key": name or None, "issued": 0, "redeemed": 0, "sales": {}})

    for value, count in issued:
        row(value)["issued"] += count
    redeemed = (
        DiscountRedemption.objects.filter(redeemed_at__gte=start, redeemed_at__lt=end)
        .annotate(group=F(f"reward__{key}"))
        .values_list("group", "order_currency")
        .annotate(n=Count("id"), amount=Sum("order_amount"))
        .order_by()
    )
    for value, currency, count, amount in redeemed:
        entry = row(value)
        entry["redeemed"] += count
        if currency and amount is not None:
            entry["sales"][currency] = entry["sales"].get(currency, Decimal(0)) + amount
    labels = _labels(group_by, set(rows))
    none_label = _("No program") if group_by == "program" else _("Other")
    out = []
    for name, entry in rows.items():
        label = labels.get(name, name) if name else str(none_label)
        sales = [{"currency": c, "amount": format_amount(a, c)} for c, a in sorted(entry["sales"].items())]
        out.append({**entry, "label": label, "sales": sales})
    out.sort(key=lambda r: (-r["issued"], -r["redeemed"], r["label"]))
    return {
        "from": since.isoformat(),
        "to": until.isoformat(),
        "timezone": report_zone().key,
        "group_by": group_by,
        "rows": out,
        "totals": {"issued": sum(r["issued"] for r in out), "redeemed": sum(r["redeemed"] for r in out)},
    }


def _labels(group_by: str, keys: set[str]) -> dict[str, str]:
    keys = {key for key in keys if key}
    if not keys:
        return {}
    if group_by == "program":
        from programs.models import Program

        return {str(pk): name for pk, name in Program.objects.filter(pk__in=[int(k) for k in keys]).values_list(
            "pk", "name")}  # fmt: skip
    from catalog.models import Product

    return {str(pk): name for pk, name in Product.objects.filter(pk__in=keys).values_list("pk", "name")}


def discount_report_table(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """CSV/XLSX rows: one per group, the merchants' order amounts as "84.50 MYR; 12.00 USD"."""
    header = [report["group_by"], "label", "issued", "redeemed", "reported_order_amounts"]
    rows: list[list[object]] = [
        [r["key"] or "", r["label"], r["issued"], r["redeemed"],
         "; ".join(f"{s['amount']} {s['currency']}" for s in r["sales"])]
        for r in report["rows"]
    ]  # fmt: skip
    rows.append(["total", "", report["totals"]["issued"], report["totals"]["redeemed"], ""])
    return header, rows
