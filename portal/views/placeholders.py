"""Pages other engineers are building: the role check is already real, the body says what is coming."""

from __future__ import annotations

from ..mixins import PortalView
from ..permissions import Perm


class ComingSoonView(PortalView):
    template_name = "portal/coming_soon.html"
    description = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["description"] = self.description
        return context


def coming_soon(section: str, title: str, perm: Perm, description: str):
    return ComingSoonView.as_view(permission=perm, nav_section=section, page_title=title, description=description)
