"""The audit log page (admins): filters by actor, action and date; paginated, newest first."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.translation import gettext_lazy

from audit.selectors import audit_event_list

from ..forms import AuditFilterForm
from ..mixins import PortalView
from ..permissions import Perm

PAGE_SIZE = 50


class AuditLogView(PortalView):
    permission = Perm.AUDIT
    nav_section = "audit"
    page_title = gettext_lazy("Audit log")
    template_name = "portal/audit.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = AuditFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        events = audit_event_list(
            actor=filters.get("actor") or "",
            action=filters.get("action") or "",
            since=filters.get("since"),
            until=filters.get("until"),
        )
        page = Paginator(events, PAGE_SIZE).get_page(self.request.GET.get("page"))
        query = self.request.GET.copy()
        query.pop("page", None)
        context.update(form=form, page=page, events=page.object_list, filter_query=query.urlencode())
        return context
