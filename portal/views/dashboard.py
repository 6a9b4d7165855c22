"""The landing page after sign-in: balances per currency (posted, held, available) of the schema in use."""

from __future__ import annotations

from funds.selectors import balance_list

from ..mixins import PortalView
from ..permissions import Perm


class DashboardView(PortalView):
    permission = Perm.VIEW
    nav_section = "dashboard"
    page_title = "Dashboard"
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
        return context
