"""The portal's main navigation: each entry shows for roles holding its permission.

Page authors add their page here (label, URL name, permission); the layout renders what the user may open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from .permissions import Perm

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise


@dataclass(frozen=True)
class NavItem:
    label: StrOrPromise  # gettext_lazy: shown in the page's language
    url_name: str
    perm: Perm
    section: str  # the `nav_section` a PortalView declares, to highlight the current entry


NAV: list[NavItem] = [
    NavItem(_("Dashboard"), "portal:dashboard", Perm.VIEW, "dashboard"),
    NavItem(_("Send"), "portal:send", Perm.SEND, "send"),
    NavItem(_("Bulk"), "portal:bulk", Perm.BULK, "bulk"),
    NavItem(_("Orders"), "portal:orders", Perm.VIEW, "orders"),
    NavItem(_("People"), "portal:people", Perm.PEOPLE, "people"),
    NavItem(_("Automations"), "portal:automations", Perm.AUTOMATIONS, "automations"),
    NavItem(_("Points"), "portal:points", Perm.SEND, "points"),
    NavItem(_("Find"), "portal:search", Perm.VIEW, "search"),
    NavItem(_("Programs"), "portal:programs", Perm.PROGRAMS, "programs"),
    NavItem(_("Approvals"), "portal:approvals", Perm.APPROVE, "approvals"),
    NavItem(_("Funds"), "portal:funds", Perm.FUNDS, "funds"),
    NavItem(_("Reports"), "portal:reports", Perm.REPORTS, "reports"),
    NavItem(_("Developers"), "portal:developers", Perm.DEVELOPERS, "developers"),
    NavItem(_("Team"), "portal:team", Perm.TEAM, "team"),
    NavItem(_("Audit"), "portal:audit", Perm.AUDIT, "audit"),
    NavItem(_("Settings"), "portal:settings_security", Perm.SETTINGS, "settings"),
]
