"""The portal's main navigation: each entry shows for roles holding its permission.

Page authors add their page here (label, URL name, permission); the layout renders what the user may open.
"""

from __future__ import annotations

from dataclasses import dataclass

from .permissions import Perm


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    perm: Perm
    section: str  # the `nav_section` a PortalView declares, to highlight the current entry


NAV: list[NavItem] = [
    NavItem("Dashboard", "portal:dashboard", Perm.VIEW, "dashboard"),
    NavItem("Send", "portal:send", Perm.SEND, "send"),
    NavItem("Bulk", "portal:bulk", Perm.BULK, "bulk"),
    NavItem("Orders", "portal:orders", Perm.VIEW, "orders"),
    NavItem("People", "portal:people", Perm.PEOPLE, "people"),
    NavItem("Programs", "portal:programs", Perm.PROGRAMS, "programs"),
    NavItem("Approvals", "portal:approvals", Perm.APPROVE, "approvals"),
    NavItem("Funds", "portal:funds", Perm.FUNDS, "funds"),
    NavItem("Developers", "portal:developers", Perm.DEVELOPERS, "developers"),
    NavItem("Team", "portal:team", Perm.TEAM, "team"),
    NavItem("Audit", "portal:audit", Perm.AUDIT, "audit"),
    NavItem("Settings", "portal:settings_security", Perm.SETTINGS, "settings"),
]
