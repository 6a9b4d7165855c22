"""Template context for portal pages on tenant hosts: tenant, live/sandbox mode and the role's navigation."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from core.zones import zone_label

from .mixins import LIVE, SANDBOX, is_tenant_host, portal_mode
from .navigation import NAV
from .permissions import perms_for


def portal(request) -> dict:
    if not is_tenant_host(request):
        return {}
    user = getattr(request, "user", None)
    perms = perms_for(user) if user is not None else frozenset()
    nav = []
    for item in NAV:
        if item.perm not in perms:
            continue
        try:
            nav.append({"label": str(item.label), "url": reverse(item.url_name), "section": item.section})
        except NoReverseMatch:
            continue  # a page not built yet
    # The switch shows the session's mode; a live-only page (Team) still runs on the live schema.
    mode = portal_mode(request) if hasattr(request, "session") else LIVE
    return {
        "portal_tenant": request.tenant,
        "portal_mode": mode,
        "portal_sandbox": mode == SANDBOX,
        "portal_shared_page": mode == SANDBOX and getattr(request, "portal_mode", mode) == LIVE,
        "portal_nav": nav,
        "portal_perms": {str(p) for p in perms},
        # Every time on the page is in this zone (portal.middleware): the footer says which.
        "portal_zone": zone_label(request.tenant.timezone),
    }
