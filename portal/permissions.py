"""What each staff role may do in the portal: one map, checked by PortalView and `role_required`."""

from __future__ import annotations

from enum import StrEnum

from accounts.models import Role


class Perm(StrEnum):
    VIEW = "view"  # dashboard, orders and rewards (read)
    SEND = "send"  # send rewards one by one
    BULK = "bulk"  # bulk CSV sending
    FUNDS = "funds"  # ledger, deposits, low-balance alerts
    DEVELOPERS = "developers"  # API keys and webhook endpoints
    TEAM = "team"  # invite, change roles, deactivate
    AUDIT = "audit"  # the audit log
    REVEAL = "reveal"  # reveal a reward's code (audited)
    PROGRAMS = "programs"  # create and change programs (budgets, curation, points currency)
    APPROVE = "approve"  # approve or reject orders and batches waiting for a second person (never one's own)
    SETTINGS = "settings"  # the tenant's approval policy and two-factor requirement
    PEOPLE = "people"  # the people directory: add, edit, import, mark as left, export, erase
    AUTOMATIONS = "automations"  # automations that send rewards by themselves (birthdays, anniversaries)
    REPORTS = "reports"  # spend and delivery reports, their downloads


ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.MANAGER: frozenset(
        {Perm.VIEW, Perm.SEND, Perm.BULK, Perm.PROGRAMS, Perm.PEOPLE, Perm.AUTOMATIONS, Perm.REPORTS}
    ),
    Role.FINANCE: frozenset({Perm.VIEW, Perm.FUNDS, Perm.APPROVE, Perm.REPORTS}),
    Role.VIEWER: frozenset({Perm.VIEW}),
}


def has_perm(user, perm: Perm | str) -> bool:
    """Whether a signed-in, active staff user's role grants `perm`."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return Perm(perm) in ROLE_PERMISSIONS.get(user.role, frozenset())


def perms_for(user) -> frozenset[Perm]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    return ROLE_PERMISSIONS.get(user.role, frozenset())
