"""Roles and deactivation: an admin changes them, every change is audited, and a tenant always keeps an admin."""

from __future__ import annotations

import pytest

from accounts.models import User
from accounts.services import staff_create, staff_set_active, staff_set_role
from audit.models import AuditEvent
from core.errors import ApplicationError


@pytest.fixture
def member(admin) -> User:
    user, _ = staff_create(email="member@alpha.test", role="viewer")
    return user


def _audited(action: str) -> list[dict]:
    return list(AuditEvent.objects.filter(action=action).order_by("created_at").values("actor", "object_id", "data"))


def test_a_role_change_is_stored_and_audited_once(admin, member):
    changed = staff_set_role(acting_user=admin, user=member, role="manager", ip="198.51.100.7")
    assert changed.role == "manager" and User.objects.get(pk=member.pk).role == "manager"
    staff_set_role(acting_user=admin, user=member, role="manager")  # unchanged: nothing to audit
    assert _audited("team.role_change") == [
        {
            "actor": "staff:admin@alpha.test",
            "object_id": str(member.pk),
            "data": {"email": "member@alpha.test", "from": "viewer", "to": "manager"},
        }
    ]


def test_an_unknown_role_is_refused(admin, member):
    with pytest.raises(ApplicationError) as refused:
        staff_set_role(acting_user=admin, user=member, role="superuser")
    assert refused.value.code == "validation_error"
    assert User.objects.get(pk=member.pk).role == "viewer" and _audited("team.role_change") == []


def test_the_last_active_admin_keeps_the_role(admin, member):
    with pytest.raises(ApplicationError) as refused:
        staff_set_role(acting_user=admin, user=admin, role="viewer")
    assert refused.value.code == "last_admin"
    assert User.objects.get(pk=admin.pk).role == "admin"
    # With a second active admin, the first may step down.
    staff_set_role(acting_user=admin, user=member, role="admin")
    staff_set_role(acting_user=member, user=admin, role="finance")
    assert User.objects.get(pk=admin.pk).role == "finance"
    # An inactive admin does not count.
    other, _ = staff_create(email="other@alpha.test", role="admin")
    staff_set_active(acting_user=member, user=other, active=False)
    with pytest.raises(ApplicationError) as refused:
        staff_set_role(acting_user=member, user=member, role="viewer")
    assert refused.value.code == "last_admin"


def test_deactivation_and_reactivation_are_audited(admin, member):
    staff_set_active(acting_user=admin, user=member, active=False, ip="198.51.100.7")
    stored = User.objects.get(pk=member.pk)
    assert not stored.is_active
    staff_set_active(acting_user=admin, user=member, active=False)  # unchanged: not audited again
    staff_set_active(acting_user=admin, user=member, active=True)
    assert User.objects.get(pk=member.pk).is_active
    assert [e["object_id"] for e in _audited("team.deactivate")] == [str(member.pk)]
    assert [e["object_id"] for e in _audited("team.reactivate")] == [str(member.pk)]


def test_nobody_deactivates_themselves_or_the_last_admin(admin, member):
    with pytest.raises(ApplicationError) as refused:
        staff_set_active(acting_user=admin, user=admin, active=False)
    assert refused.value.code == "cannot_deactivate_self"
    staff_set_role(acting_user=admin, user=member, role="manager")
    with pytest.raises(ApplicationError) as refused:
        staff_set_active(acting_user=member, user=admin, active=False)
    assert refused.value.code == "last_admin"
    assert User.objects.get(pk=admin.pk).is_active
    assert _audited("team.deactivate") == []
