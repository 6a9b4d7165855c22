"""Optional TOTP two-factor: enrol with the QR/secret, then a code is needed (once each) at sign-in."""

import re

import pyotp
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.models import AuditEvent
from testsupport.portal import sign_in


def enrol(client, path: str = "/account/two-factor/") -> str:
    """Enrol through the page (portal or console); returns the secret. The recovery codes are shown once."""
    secret, _ = enrol_with_codes(client, path)
    return secret


def enrol_with_codes(client, path: str = "/account/two-factor/") -> tuple[str, list[str]]:
    page = client.get(path).content.decode()
    assert "<svg" in page
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    response = client.post(path, {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200, response.status_code
    codes = re.findall(r"<li>([2-9A-Z]{5}-[2-9A-Z]{5})</li>", response.content.decode())
    assert len(codes) == 10
    return secret, codes


def test_enrol_then_sign_in_with_a_code(signed_in, tenant_a):
    client, user = signed_in("viewer")
    secret = enrol(client)
    with tenant_context(tenant_a):
        stored = User.objects.get(pk=user.pk)
    assert stored.totp_enabled and secret not in stored.totp_secret_encrypted  # encrypted at rest
    client.post("/logout/")
    response = sign_in(client, user.email)
    assert response.status_code == 302 and response["Location"] == "/login/two-factor/"
    assert client.get("/").status_code == 302  # not signed in yet
    wrong = client.post("/login/two-factor/", {"code": "000000"})
    assert "That code is not valid" in wrong.content.decode()
    # The code used to enrol was spent; the next time step's code is accepted once.
    code = pyotp.TOTP(secret).at(int(__import__("time").time()) + 30)
    assert client.post("/login/two-factor/", {"code": code})["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/logout/")
    sign_in(client, user.email)
    replay = client.post("/login/two-factor/", {"code": code})
    assert replay.status_code == 200 and "not valid" in replay.content.decode()
    with tenant_context(tenant_a):
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"auth.totp_enable", "auth.totp_failed", "auth.login"} <= actions


def test_wrong_enrolment_code_is_an_error_next_to_the_field(signed_in):
    client, _ = signed_in("viewer")
    client.get("/account/two-factor/")
    response = client.post("/account/two-factor/", {"code": "123"})
    assert "Enter the 6-digit code" in response.content.decode()
    response = client.post("/account/two-factor/", {"code": "000000"})
    assert "not valid" in response.content.decode()


def test_two_factor_failures_count_toward_the_throttle(signed_in, settings):
    settings.PORTAL_LOGIN_FAILURE_LIMIT = 2
    client, user = signed_in("viewer")
    enrol(client)
    client.post("/logout/")
    sign_in(client, user.email)
    client.post("/login/two-factor/", {"code": "000000"})
    client.post("/login/two-factor/", {"code": "111111"})
    assert client.post("/login/two-factor/", {"code": "222222"}).status_code == 429


def test_disable_needs_a_current_code(signed_in, tenant_a):
    client, user = signed_in("viewer")
    secret = enrol(client)
    assert "not valid" in client.post("/account/two-factor/", {"code": "000000"}).content.decode()
    code = pyotp.TOTP(secret).at(int(__import__("time").time()) + 30)
    assert client.post("/account/two-factor/", {"code": code}).status_code == 302
    with tenant_context(tenant_a):
        assert not User.objects.get(pk=user.pk).totp_enabled


def test_the_pending_two_factor_step_cannot_be_skipped(client_a):
    response = client_a.get("/login/two-factor/")
    assert response.status_code == 302 and response["Location"] == "/login/"
