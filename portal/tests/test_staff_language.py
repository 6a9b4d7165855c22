"""Staff read what the portal tells them in their language: flash messages after team actions, and the emails
that reach them (invitation in the company's default language, password reset in their own), read from a real
SMTP server."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.services import user_language_set
from tenants.tenant_settings import tenant_settings_update
from testsupport.portal import portal_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


def _received(smtp, to: str):
    [data] = [m["data"] for m in smtp.messages if m["to"] == [to]]
    message = email.message_from_string(data, policy=policy.default)
    return message, message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_a_malay_company_invites_in_malay_and_team_changes_are_said_in_malay(
    signed_in, tenant_a, smtp, django_capture_on_commit_callbacks
):
    tenant_settings_update(tenant=tenant_a, changes={"default_locale": "ms"}, actor=None)
    client, admin = signed_in("admin")

    with django_capture_on_commit_callbacks(execute=True):
        invited = client.post(
            "/team/", {"email": "siti@alpha.test", "name": "Siti", "role": "manager"}, follow=True
        ).content.decode()

    assert "Jemputan dihantar kepada siti@alpha.test." in invited
    message, text, html = _received(smtp, "siti@alpha.test")
    assert message["Subject"] == f"Anda dijemput ke {tenant_a.name} di Portal Ganjaran"
    assert f"{admin.email} menjemput anda ke Portal Ganjaran {tenant_a.name} sebagai Pengurus." in text
    assert "Hai Siti," in text and "/reset/" in text
    assert '<html lang="ms">' in html and "Pilih kata laluan anda</a>" in html
    with tenant_context(tenant_a):
        siti = User.objects.get(email="siti@alpha.test")
    role = client.post(f"/team/{siti.pk}/role", {"role": "finance"}, follow=True).content.decode()
    assert "siti@alpha.test kini Kewangan." in role
    off = client.post(f"/team/{siti.pk}/deactivate", follow=True).content.decode()
    assert "siti@alpha.test telah dinyahaktifkan." in off


def test_a_password_reset_email_is_in_the_staff_members_own_language(staff, tenant_a, smtp):
    english, malay = staff("viewer", email="pat@alpha.test"), staff("viewer", email="aminah@alpha.test")
    with tenant_context(tenant_a):
        user_language_set(user=malay, language="ms")
    browser = portal_client(tenant_a)  # an English browser asks for both

    for person in (english, malay):
        assert browser.post("/password-reset/", {"email": person.email}).status_code == 302

    _, text, html = _received(smtp, "pat@alpha.test")
    assert "Someone asked to reset the password of pat@alpha.test" in text
    message, text, html = _received(smtp, "aminah@alpha.test")
    assert message["Subject"] == f"Tetapkan semula kata laluan Portal Ganjaran {tenant_a.name} anda"
    assert "Seseorang meminta untuk menetapkan semula kata laluan aminah@alpha.test" in text
    assert re.search(r'href="http://alpha\.localhost/reset/[^"]+"[^>]*>Pilih kata laluan baharu</a>', html)
