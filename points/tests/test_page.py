"""The recipients' points page: sign-in link by email (single use, expiring, rate-limited, no enumeration),
balance and catalogue priced in points, redeem → an order emailed as usual; Malay; tenant host only."""

from __future__ import annotations

import re
from datetime import timedelta

from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from orders.models import Order
from points.models import PointsSignIn
from testsupport.portal import portal_client

from .conftest import make_person
from .test_points import award


def sign_in_link(client, email, mailoutbox, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/p/", {"email": email})
    assert response.status_code == 200 and 'data-testid="link-sent"' in response.content.decode()
    return re.search(r"http://[^/]+(/p/login/\S+)", mailoutbox[-1].body).group(1)


def test_sign_in_see_points_and_redeem(tenant_a, kudos, ana, shop, mailoutbox, django_capture_on_commit_callbacks):
    award(tenant_a, kudos, ana, 3000, "a1", reason="Great demo")
    client = portal_client(tenant_a)
    assert "Email me a sign-in link" in client.get("/p/").content.decode()
    link = sign_in_link(client, "E-1@ALPHA.test", mailoutbox, django_capture_on_commit_callbacks)
    assert mailoutbox[-1].to == [ana.email]
    assert client.get(link).status_code == 200  # a mail scanner opening it does not use it up
    assert client.post(link).status_code == 302
    assert client.post(link).status_code == 410  # single use
    page = client.get("/p/").content.decode()
    assert "3000 Kudos" in page and "Great demo" in page and "2500 Kudos" in page  # coffee 25.00 = 2500 points
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/p/redeem", {"program": "kudos", "product_id": str(shop.coffee_usd.id),
                                             "amount": "25.00"}, follow=True)  # fmt: skip
    assert response.status_code == 200 and "Your reward is on its way" in response.content.decode()
    assert "Your reward is on its way" in client.get("/p/done").content.decode()  # reloading redeems nothing
    assert "500 Kudos" in client.get("/p/").content.decode()
    with tenant_context(tenant_a):
        order = Order.objects.get()
        assert order.rewards.get().recipient_email == ana.email
    denied = client.post("/p/redeem", {"program": "kudos", "product_id": str(shop.coffee_usd.id), "amount": "10.00"},
                         follow=True)  # fmt: skip
    assert "Not enough Kudos" in denied.content.decode()
    malay = client.get("/p/?lang=ms").content.decode()
    assert '<html lang="ms">' in malay


def test_links_expire_are_rate_limited_and_say_nothing_about_strangers(
    tenant_a, kudos, ana, mailoutbox, django_capture_on_commit_callbacks, settings
):
    award(tenant_a, kudos, ana, 100, "a1")
    client = portal_client(tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        stranger = client.post("/p/", {"email": "nobody@alpha.test"})
    assert 'data-testid="link-sent"' in stranger.content.decode() and mailoutbox == []
    link = sign_in_link(client, ana.email, mailoutbox, django_capture_on_commit_callbacks)
    with tenant_context(tenant_a):
        PointsSignIn.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.post(link).status_code == 410
    settings.POINTS_SIGN_IN_LIMIT_PER_HOUR = 2
    for _ in range(1):
        client.post("/p/", {"email": ana.email})
    limited = client.post("/p/", {"email": ana.email})
    assert limited.status_code == 429 and limited["Retry-After"]
    make_person(tenant_a, "E-2", email="e-2@alpha.test")  # holds no points: no link
    assert Client().get("/p/").status_code == 404  # the public host has no points page


def test_a_malay_reader_gets_the_gift_they_redeem_emailed_in_malay(
    tenant_a, kudos, shop, mailoutbox, django_capture_on_commit_callbacks
):
    """Review: Siti (language Malay) signed in by a Malay link, redeemed on the Malay page, and her gift email came
    in English: the redemption named no language for the recipient."""
    from fulfillment.delivery import reward_email_render

    siti = make_person(tenant_a, "E-7", name="Siti Rahman", locale="ms")
    award(tenant_a, kudos, siti, 3000, "s1")
    client = portal_client(tenant_a)
    link = sign_in_link(client, siti.email, mailoutbox, django_capture_on_commit_callbacks)
    assert client.post(link).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/p/redeem", {"program": "kudos", "product_id": str(shop.coffee_usd.id),
                                             "amount": "25.00"}, follow=True)  # fmt: skip
    assert "Ganjaran anda sedang dihantar" in response.content.decode()
    with tenant_context(tenant_a):
        subject, text, _html = reward_email_render(Order.objects.get().rewards.get())
    assert "menghantar hadiah" in subject and "sent you" not in subject, subject
    assert "Keep this message safe" not in text, text


def test_a_malay_readers_sign_in_link_opens_in_malay(tenant_a, kudos, mailoutbox, django_capture_on_commit_callbacks):
    """Review: the sign-in email came in Malay but its link opened an English "Sign in to your points" page."""
    siti = make_person(tenant_a, "E-8", name="Siti Rahman", locale="ms")
    award(tenant_a, kudos, siti, 100, "s1")
    client = portal_client(tenant_a)
    link = sign_in_link(client, siti.email, mailoutbox, django_capture_on_commit_callbacks)
    assert "Buka pautan ini" in mailoutbox[-1].body
    page = client.get(link).content.decode()
    assert "Log masuk ke mata anda" in page and "Sign in to your points" not in page
    assert client.post(link).status_code == 302
    assert "Log keluar" in client.get("/p/").content.decode()
