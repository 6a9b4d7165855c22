"""The landing page after sign-in: balances per currency (posted, held, available) of the schema in use,
spend this month by program, rewards by status, delivery and redemption rates (SVG charts)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from funds.selectors import balance_list
from orders.models import RewardStatus
from orders.reports import report_today, reward_rates, reward_status_counts, spend_by_program

from ..charts import Bar, bar_chart
from ..mixins import PortalView
from ..permissions import Perm
from ..templatetags.portal_tags import money

STATUS_TONES: dict[str, str] = {
    RewardStatus.DELIVERED: "ok",
    RewardStatus.OPENED: "ok",
    RewardStatus.REDEEMED: "ok",
    RewardStatus.DELIVERY_FAILED: "warn",
    RewardStatus.FAILED: "danger",
    RewardStatus.CANCELED: "muted",
    RewardStatus.EXPIRED: "muted",
}


class DashboardView(PortalView):
    permission = Perm.VIEW
    nav_section = "dashboard"
    page_title = gettext_lazy("Dashboard")
    template_name = "portal/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        balances = balance_list()
        context["balances"] = [
            {
                "balance": b,
                "low": b.low_balance_threshold is not None and b.available < b.low_balance_threshold,
                "held_percent": int(b.held * 100 / b.posted) if b.posted > 0 else 0,
            }
            for b in balances
        ]
        context["low_balances"] = [row["balance"] for row in context["balances"] if row["low"]]
        context.update(self._activity())
        return context

    def _activity(self) -> dict:
        """Charts of this month's spend per program (one per funding currency) and of rewards by status."""
        month_start = report_today().replace(day=1)  # the month of the tenant's zone
        spend = spend_by_program(since=month_start)
        spend_charts = []
        for currency in sorted({row.currency for row in spend}):
            rows = [row for row in spend if row.currency == currency]
            bars = [
                Bar(row.program or "No program", row.total, f"{money(row.total, currency)} {currency}") for row in rows
            ]
            spend_charts.append(
                {
                    "currency": currency,
                    "rows": rows,
                    "chart": bar_chart(
                        chart_id=f"spend-{currency.lower()}",
                        title=f"Spend this month by program, {currency}",
                        bars=bars,
                    ),
                }
            )
        counts = reward_status_counts()
        # Statuses with rewards in them, plus "delivered" always: the bar people look for first.
        shown = [
            (status.replace("_", " ").capitalize(), n, STATUS_TONES.get(status, ""))
            for status, n in counts.items()
            if n or status == RewardStatus.DELIVERED
        ]
        status_chart = bar_chart(
            chart_id="rewards-by-status",
            title="Rewards by status",
            bars=[Bar(label, n, f"{n:,}", tone) for label, n, tone in shown],
        )
        rates = reward_rates(counts)
        return {
            "month_start": month_start,
            "spend_charts": spend_charts,
            "status_counts": shown,
            "status_total": sum(counts.values()),
            "status_chart": status_chart,
            "rates": rates,
            "delivery_percent": None if rates.delivery_rate is None else round(rates.delivery_rate * 100, 1),
            "redemption_percent": None if rates.redemption_rate is None else round(rates.redemption_rate * 100, 1),
        }
