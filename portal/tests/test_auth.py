"""Signing in to a tenant's portal with the Django client: sessions, throttling, isolation, reset, CSRF."""

import re

import pytest
from django.core import mail
from django.test import Client
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from portal.mixins import LAST_SEEN_SESSION_KEY
from testsupport.portal import PASSWORD, host_of, make_staff, portal_client, sign_in


def test_login_lands_on_the_dashboard_with_balances(client_a, staff, funded_a):
    user = staff("viewer")
    response = sign_in(client_a, user.email)
    assert response.status_code == 302 and response["Location"] == "/"
    page = client_a.get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Alpha Corp" in text and "1,000.00" in text and "Available" in text


def test_session_cookie_is_httponly_lax_and_ends_with_the_browser(client_a, staff):
    response = sign_in(client_a, staff().email)
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["expires"] and not cookie["max-age"]  # a browser-session cookie
    assert not cookie["domain"]  # host-only: alpha.localhost's cookie never goes to beta.localhost


def test_login_rotates_the_session_key(client_a, staff, tenant_a):
    from django.contrib.sessions.backends.db import SessionStore

    user = staff()
    with tenant_context(tenant_a):  # a session planted before sign-in (fixation)
        planted = SessionStore()
        planted["seen"] = True
        planted.create()
    client_a.cookies["sessionid"] = planted.session_key
    after = sign_in(client_a, user.email).cookies["sessionid"].value
    assert after and after != planted.session_key
    assert client_a.get("/").status_code == 200


def test_wrong_password_is_a_readable_error_and_audited(client_a, staff, tenant_a):
    user = staff()
    response = sign_in(client_a, user.email, "not-the-password")
    assert response.status_code == 200
    assert "don&#x27;t match an active account" in response.content.decode()
    assert client_a.get("/").status_code == 302
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.data == {"email": user.email} and "not-the-password" not in str(event.data)


def test_failed_logins_are_throttled_per_tenant_and_email(client_a, staff, settings):
    settings.PORTAL_LOGIN_FAILURE_LIMIT = 3
    user = staff()
    for _ in range(3):
        assert sign_in(client_a, user.email, "wrong-password-x").status_code == 200
    response = sign_in(client_a, user.email)  # even the right password now waits
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.content.decode()
    other = staff()
    assert sign_in(client_a, other.email).status_code == 302  # another account is not locked out


def test_failed_logins_are_throttled_per_ip(client_a, staff, settings):
    settings.PORTAL_LOGIN_IP_FAILURE_LIMIT = 3
    for n in range(3):
        sign_in(client_a, f"nobody{n}@alpha.test", "wrong-password-x")
    response = sign_in(client_a, staff().email)
    assert response.status_code == 429


def test_a_user_of_tenant_a_cannot_sign_in_on_tenant_b(staff, tenant_b):
    user = staff()
    client_b = portal_client(tenant_b)
    response = sign_in(client_b, user.email)
    assert response.status_code == 200 and "don&#x27;t match" in response.content.decode()
    assert client_b.get("/").status_code == 302


def test_a_session_of_tenant_a_means_nothing_on_tenant_b(signed_in, tenant_b):
    client, _ = signed_in("admin")
    assert client.get("/").status_code == 200
    # The Django test client sends the cookie to any host; a browser would not even do that.
    response = client.get("/", HTTP_HOST=host_of(tenant_b))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_portal_does_not_exist_on_the_public_host(signed_in):
    client, _ = signed_in("admin")
    for path in ("/", "/login/", "/team/", "/audit/", "/password-reset/"):
        assert client.get(path, HTTP_HOST="localhost").status_code == 404, path
        assert client.get(path, HTTP_HOST="127.0.0.1").status_code == 404, path
    # The tenant's session is not an operator session on the public host.
    admin = client.get("/admin/", HTTP_HOST="127.0.0.1")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]
    assert client.get("/healthz", HTTP_HOST="127.0.0.1").status_code == 200


def test_anonymous_is_sent_to_login_with_next(client_a):
    response = client_a.get("/team/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/team/"


def test_login_honours_a_safe_next_only(client_a, staff):
    user = staff()
    response = client_a.post("/login/", {"email": user.email, "password": PASSWORD, "next": "/team/"})
    assert response["Location"] == "/team/"
    response = client_a.post("/login/", {"email": user.email, "password": PASSWORD, "next": "https://evil.test/"})
    assert response["Location"] == "/"


def test_logout_is_post_only_and_ends_the_session(signed_in, tenant_a):
    client, user = signed_in("viewer")
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="auth.logout", actor=f"staff:{user.email}").exists()


def test_idle_sessions_are_signed_out(signed_in, tenant_a, settings):
    settings.PORTAL_SESSION_IDLE_TIMEOUT_SECONDS = 60
    client, _ = signed_in("viewer")
    with tenant_context(tenant_a):  # sessions live in the tenant's live schema
        session = client.session
        session[LAST_SEEN_SESSION_KEY] -= 120
        session.save()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "without activity" in client.get(response["Location"]).content.decode()


def test_csrf_is_enforced_on_login(tenant_a, staff):
    user = staff()
    client = Client(HTTP_HOST=host_of(tenant_a), enforce_csrf_checks=True)
    assert client.post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 403
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post("/login/", {"email": user.email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_password_reset_by_email_stays_on_the_tenant_host(client_a, staff, tenant_a):
    user = staff("finance")
    response = client_a.post("/password-reset/", {"email": user.email})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    [message] = mail.outbox
    assert message.to == [user.email] and "Alpha Corp" in message.subject
    link = re.search(r"http://(\S+?)(/reset/\S+)", message.body)
    assert link.group(1) == host_of(tenant_a)
    form_page = client_a.get(link.group(2), follow=True)
    assert form_page.status_code == 200 and "new_password1" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    new = "a-brand-new-passphrase"
    done = client_a.post(set_url, {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done["Location"] == "/reset/done/"
    assert sign_in(client_a, user.email, PASSWORD).status_code == 200  # the old password is gone
    assert sign_in(client_a, user.email, new).status_code == 302
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="auth.password_set", actor=f"staff:{user.email}").exists()


def test_password_reset_for_an_unknown_email_sends_nothing_and_says_the_same(client_a):
    response = client_a.post("/password-reset/", {"email": "nobody@alpha.test"})
    assert response.status_code == 302 and mail.outbox == []


def test_password_reset_of_tenant_a_user_on_tenant_b_sends_nothing(staff, tenant_b):
    user = staff()
    portal_client(tenant_b).post("/password-reset/", {"email": user.email})
    assert mail.outbox == []


@pytest.mark.parametrize("role", ["admin", "manager", "finance", "viewer"])
def test_every_role_can_sign_in(client_a, tenant_a, role):
    user = make_staff(tenant_a, f"{role}-x@alpha.test", role)
    assert sign_in(client_a, user.email).status_code == 302
    assert client_a.get("/").status_code == 200


def test_a_suspended_tenant_portal_is_closed(signed_in, tenant_a):
    from tenants.services import tenant_set_status

    client, user = signed_in("admin")
    tenant_set_status(tenant=tenant_a, status="suspended")
    response = client.get("/")
    assert response.status_code == 403 and "suspended" in response.content.decode()
    assert sign_in(client, user.email).status_code == 403
