"""The approvals queue (admins, finance): orders and bulk batches waiting for a second person, approve or reject.

Each row shows what it costs, who asked and when the request expires. Whoever asked sees their own request
without the buttons (four eyes: the services refuse it anyway, 403 `four_eyes_required`).
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View

from batches.approvals import batch_approve, batch_reject
from batches.selectors import batches_awaiting_approval
from core.errors import ApplicationError
from orders.approvals import order_approve, order_reject
from orders.selectors import orders_awaiting_approval, requested_by

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm

QUEUE_LIMIT = 200  # the oldest requests first; a queue longer than this is worked from the top


class ApprovalsView(PortalView):
    permission = Perm.APPROVE
    nav_section = "approvals"
    page_title = gettext_lazy("Approvals")
    template_name = "portal/approvals.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        me = self.actor.label
        rows = []
        for order in orders_awaiting_approval()[:QUEUE_LIMIT]:
            asked_by = order.approval_requested_by or requested_by(order)
            count = order.reward_count
            label = ngettext("Order of %(count)d reward", "Order of %(count)d rewards", count) % {"count": count}
            rows.append({
                "kind": "order", "id": order.id, "label": label,
                "totals": [(order.total_amount, order.currency)], "asked_by": asked_by, "asked_at": order.created_at,
                "expires_at": order.approval_expires_at, "mine": me in (asked_by, requested_by(order)),
            })  # fmt: skip
        for batch in batches_awaiting_approval()[:QUEUE_LIMIT]:
            asked_by = batch.approval_requested_by or requested_by(batch)
            rows.append({
                "kind": "batch", "id": batch.id, "points": batch.kind == "points",
                "label": (
                    ngettext("Points file “%(name)s”, %(count)d award", "Points file “%(name)s”, %(count)d awards",
                             batch.valid_rows) if batch.kind == "points"
                    else _("Bulk batch “%(name)s”, %(count)d rows")
                ) % {"name": batch.name or batch.file_name, "count": batch.valid_rows},
                "totals": [(Decimal(amount), currency) for currency, amount in sorted(batch.total_cost.items())],
                "asked_by": asked_by, "asked_at": batch.confirmed_at or batch.created_at,
                "expires_at": batch.approval_expires_at, "mine": me in (asked_by, requested_by(batch)),
            })  # fmt: skip
        rows.sort(key=lambda row: row["expires_at"])
        sums: dict[str, Decimal] = {}
        for row in rows:
            for amount, currency in row["totals"]:
                sums[currency] = sums.get(currency, Decimal(0)) + amount
        context.update(rows=rows, sums=sorted(sums.items()))
        return context


class ApprovalDecisionView(PortalMixin, View):
    """POST /approvals/<kind>/<id>/<action>: kind order|batch, action approve|reject (with an optional reason)."""

    permission = Perm.APPROVE

    def post(self, request, kind: str, object_id, action: str):
        reason = request.POST.get("reason", "")[:300]
        services = {
            ("order", "approve"): lambda: order_approve(order_id=object_id, actor=self.actor),
            ("order", "reject"): lambda: order_reject(order_id=object_id, actor=self.actor, reason=reason),
            ("batch", "approve"): lambda: batch_approve(batch_id=object_id, actor=self.actor),
            ("batch", "reject"): lambda: batch_reject(batch_id=object_id, actor=self.actor, reason=reason),
        }
        decide = services.get((kind, action))
        if decide is None:
            raise Http404("No such action")
        try:
            decide()
        except ApplicationError as exc:
            if exc.status == 404:
                raise Http404("No such request") from None
            messages.error(request, exc.detail)
        else:
            if action == "approve":
                messages.success(request, _("Approved: it goes on to be sent now."))
            else:
                messages.success(request, _("Rejected: nothing is sent and the funds are available again."))
        return redirect("portal:approvals")
