"""The reward email's From header, as the recipient's mail server receives it (the suite's real SMTP sink)."""

from __future__ import annotations

import email
from email import policy

import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from fulfillment.delivery import reward_email_from
from fulfillment.services import reward_fulfil
from orders.models import Reward
from testsupport.orders import digital_order


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


def _emailed_from(api, tenant, product, smtp, *, to: str, sender_name: str = "", stored_sender_name: str = ""):
    """Order one email reward, fulfil it, and return the From header of the message the sink received."""
    body = digital_order(product, "25.00")
    body["rewards"][0].update(recipient={"name": "Ada Lovelace", "email": to}, sender_name=sender_name)
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    with tenant_context(tenant):
        if stored_sender_name:  # a name stored before order-time validation refused such characters
            Reward.objects.filter(pk=reward_id).update(sender_name=stored_sender_name)
        reward_fulfil(reward_id=reward_id)
    [data] = [m["data"] for m in smtp.messages if m["to"] == [to]]
    message = email.message_from_string(data, policy=policy.default)
    [address] = message["From"].addresses
    return address


def test_the_senders_name_is_shown_with_the_tenants_name_and_the_platforms_address(api_a, funded_a, shop, smtp):
    address = _emailed_from(
        api_a, funded_a, shop.coffee_usd, smtp, to="phish@example.com", sender_name="PayPal Security Team"
    )
    assert address.display_name == f"PayPal Security Team via {funded_a.name}"
    assert address.addr_spec == settings.DEFAULT_FROM_EMAIL


def test_without_a_sender_name_the_tenants_name_alone_is_shown(api_a, funded_a, shop, smtp):
    address = _emailed_from(api_a, funded_a, shop.coffee_usd, smtp, to="plain@example.com")
    assert address.display_name == funded_a.name and address.addr_spec == settings.DEFAULT_FROM_EMAIL


def test_control_and_bidi_characters_are_dropped_and_unicode_is_encoded(api_a, funded_a, shop, smtp):
    funded_a.name = "Société Générale Ünïcode"
    funded_a.save(update_fields=["name"])
    address = _emailed_from(
        api_a,
        funded_a,
        shop.coffee_usd,
        smtp,
        to="bidi@example.com",
        stored_sender_name='Zoë\tBcc: x@evil.example\u202e\u200b, "HR" <ceo@evil.example>',
    )
    assert address.display_name == 'Zoë Bcc: x@evil.example, "HR" <ceo@evil.example> via Société Générale Ünïcode'
    assert address.addr_spec == settings.DEFAULT_FROM_EMAIL  # the quoted name cannot smuggle in an address
    [data] = [m["data"] for m in smtp.messages if m["to"] == ["bidi@example.com"]]
    raw_from = email.message_from_string(data, policy=policy.compat32)["From"]
    assert raw_from.isascii() and "=?utf-8?" in raw_from.lower()  # RFC 2047, not raw UTF-8
    assert "x@evil.example" not in [m["to"][0] for m in smtp.messages]


def test_a_line_break_in_a_stored_sender_name_never_reaches_the_from_header(api_a, funded_a, shop):
    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"))
    with tenant_context(funded_a):
        reward = Reward.objects.get(pk=response.json()["rewards"][0]["id"])
        reward.sender_name = "Bob\r\nBcc: x@evil.example\u2028"
        sender = reward_email_from(reward)
    assert sender == f'"Bob Bcc: x@evil.example via {funded_a.name}" <{settings.DEFAULT_FROM_EMAIL}>'
