"""Invitations and new staff: the invitee gets a link to choose a password (after commit); bad input changes nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.models import User
from accounts.services import staff_create, staff_invite
from audit.models import AuditEvent
from core.errors import ApplicationError


def _link(user: User) -> str:
    return f"https://alpha.example/set-password/{user.pk}/"


def test_an_invitee_gets_a_link_and_no_usable_password(admin, tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invited = staff_invite(
            acting_user=admin, email=" New.Person@Alpha.test ", role="finance", name="Nora", set_password_url=_link,
            ip="198.51.100.7",
        )  # fmt: skip
    stored = User.objects.get(pk=invited.pk)
    assert (stored.email, stored.role, stored.name) == ("new.person@alpha.test", "finance", "Nora") and stored.is_active
    assert not stored.has_usable_password()
    [email] = mailoutbox
    assert email.to == ["new.person@alpha.test"]
    assert email.subject == f"You're invited to {tenant_a.name} on Rewards Portal"
    assert _link(stored) in email.body and "admin@alpha.test invited you" in email.body and "Finance" in email.body
    event = AuditEvent.objects.get(action="team.invite")
    assert (event.actor, event.object_id, event.ip) == ("staff:admin@alpha.test", str(stored.pk), "198.51.100.7")
    assert event.data == {"email": "new.person@alpha.test", "role": "finance"}


def test_an_invitation_rolled_back_sends_nothing(admin, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        staff_invite(acting_user=admin, email="later@alpha.test", role="viewer", set_password_url=_link)
        transaction.set_rollback(True)
    assert mailoutbox == [] and not User.objects.filter(email="later@alpha.test").exists()


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [
        ("not-an-email", "viewer", "email"),
        ("someone@alpha.test", "owner", "role"),
        ("ADMIN@alpha.test", "viewer", "email"),  # already has an account (emails are case-insensitive)
    ],
)
def test_a_bad_invitation_is_refused_and_changes_nothing(admin, mailoutbox, email, role, field):
    with pytest.raises(ApplicationError) as refused:
        staff_invite(acting_user=admin, email=email, role=role, set_password_url=_link)
    assert refused.value.code == "validation_error" and field in refused.value.errors
    assert list(User.objects.values_list("email", flat=True)) == ["admin@alpha.test"]
    assert mailoutbox == [] and not AuditEvent.objects.filter(action="team.invite").exists()


def test_staff_create_generates_a_password_or_takes_a_long_enough_one(in_tenant_a):
    user, generated = staff_create(email="ops@alpha.test", role="manager")
    assert len(generated) >= 12 and user.check_password(generated)
    user, given = staff_create(email="fin@alpha.test", role="finance", password="long-enough-1")
    assert given == "long-enough-1" and user.check_password(given)
    with pytest.raises(ApplicationError) as refused:
        staff_create(email="short@alpha.test", role="viewer", password="short")
    assert "password" in refused.value.errors
    assert not User.objects.filter(email="short@alpha.test").exists()
