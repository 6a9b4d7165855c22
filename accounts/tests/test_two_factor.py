"""TOTP two-factor: enrolment proves the authenticator holds the secret; each code is accepted once."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp
import pytest
from django.utils import timezone

from accounts.models import User
from accounts.services import (
    totp_disable,
    totp_enable,
    totp_provisioning_uri,
    totp_secret_new,
    totp_verify,
)
from audit.models import AuditEvent
from core import crypto
from core.errors import ApplicationError

# The service reads the clock (timezone.now): pinned 10 s into a 30 s step, so no test straddles a step boundary.
NOW = datetime(2026, 3, 2, 9, 0, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch) -> None:
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def _code(secret: str, steps_from_now: int = 0) -> str:
    return pyotp.TOTP(secret).at(NOW.timestamp() + 30 * steps_from_now)


@pytest.fixture
def enrolled(admin) -> tuple[User, str]:
    """The admin with two-factor on; the code used to enrol (this time step's) is spent."""
    secret = totp_secret_new()
    return totp_enable(user=admin, secret=secret, code=_code(secret), ip="203.0.113.9"), secret


def test_the_provisioning_uri_names_the_user_the_tenant_and_the_issuer(admin):
    secret = totp_secret_new()
    uri = totp_provisioning_uri(user=admin, secret=secret, tenant_name="Alpha Corp")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    assert "admin%40alpha.test%20%28Alpha%20Corp%29" in uri and "issuer=Rewards%20Portal" in uri
    assert totp_secret_new() != secret


def test_enrolment_stores_the_secret_encrypted_and_is_audited(enrolled):
    user, secret = enrolled
    stored = User.objects.get(pk=user.pk)
    assert stored.totp_enabled and stored.totp_enabled_at is not None
    assert secret not in stored.totp_secret_encrypted and crypto.decrypt(stored.totp_secret_encrypted) == secret
    event = AuditEvent.objects.get(action="auth.totp_enable")
    assert (event.actor, event.object_id, event.ip) == ("staff:admin@alpha.test", str(user.pk), "203.0.113.9")
    assert secret not in str(event.data)


@pytest.mark.parametrize("code", ["000000", "12345", "1234567", "abcdef", ""])
def test_enrolment_with_a_wrong_code_changes_nothing(admin, code):
    secret = totp_secret_new()
    if code == "000000" and _code(secret) == code:
        pytest.skip("the current code happens to be 000000")
    with pytest.raises(ApplicationError) as refused:
        totp_enable(user=admin, secret=secret, code=code)
    assert refused.value.code == "invalid_code" and "code" in refused.value.errors
    stored = User.objects.get(pk=admin.pk)
    assert not stored.totp_enabled and stored.totp_enabled_at is None
    assert not AuditEvent.objects.filter(action="auth.totp_enable").exists()


def test_a_code_is_accepted_once_and_never_an_earlier_one(enrolled):
    user, secret = enrolled
    assert not totp_verify(user=user, code=_code(secret))  # the enrolment code: spent
    assert totp_verify(user=user, code=_code(secret, 1))  # the next step's (clock drift of one step)
    assert not totp_verify(user=user, code=_code(secret, 1))  # replayed
    assert not totp_verify(user=user, code=_code(secret))  # older than the last accepted one


def test_codes_outside_the_window_or_malformed_are_refused(enrolled):
    user, secret = enrolled
    assert not totp_verify(user=user, code=_code(secret, 2))  # a minute ahead: too far
    assert not totp_verify(user=user, code=_code(secret, -2))  # a minute old
    assert not totp_verify(user=user, code="12 34")
    spaced = _code(secret, 1)
    assert totp_verify(user=user, code=f"{spaced[:3]} {spaced[3:]}")  # as authenticator apps show it


def test_without_two_factor_no_code_verifies(admin):
    assert not totp_verify(user=admin, code="123456")


def test_disabling_needs_a_current_code(enrolled):
    user, secret = enrolled
    with pytest.raises(ApplicationError) as refused:
        totp_disable(user=user, code=_code(secret))  # spent at enrolment
    assert refused.value.code == "invalid_code"
    assert User.objects.get(pk=user.pk).totp_enabled
    totp_disable(user=user, code=_code(secret, 1), ip="203.0.113.9")
    stored = User.objects.get(pk=user.pk)
    assert not stored.totp_enabled and stored.totp_enabled_at is None and stored.totp_last_step is None
    assert AuditEvent.objects.filter(action="auth.totp_disable", object_id=str(user.pk)).count() == 1
