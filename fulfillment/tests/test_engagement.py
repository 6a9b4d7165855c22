"""Email opens count in the funnel: the reward email's pixel, or a followed link of it, marks the reward opened
once (reward.opened, the reports' `opened`); a bad or replayed pixel changes nothing, a link redirects only to
its own signed target, and a program can switch both off."""

import re

from django.core import mail, signing
from django.db import connection
from django_tenants.utils import tenant_context

from fulfillment.engagement import CLICK_SALT, PIXEL
from fulfillment.services import reward_fulfil
from orders.models import Reward
from programs.services import program_create
from testsupport.orders import digital_order
from webhooks.models import Event

PIXEL_URL = re.compile(r'<img src="https?://[^/"]+(/e/[^"]+\.gif)"')


def _emailed(api, tenant, product, **order_fields) -> tuple[str, str]:
    response = api.post("/api/v1/orders", digital_order(product, "25.00", **order_fields))
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    mail.outbox.clear()
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
    [message] = mail.outbox
    return reward_id, message.alternatives[0][0]


def test_the_open_pixel_marks_an_emailed_code_opened_once(api_a, funded_a, shop, client):
    reward_id, html = _emailed(api_a, funded_a, shop.coffee_usd)
    path = PIXEL_URL.search(html).group(1)
    connection.set_schema_to_public()
    for _ in range(2):  # a second load (another device, a proxy) changes nothing more
        response = client.get(path)
        assert response.status_code == 200 and response.content == PIXEL and response["Content-Type"] == "image/gif"
        assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    forged = client.get(path.replace(".gif", "x.gif"))
    assert forged.status_code == 200 and forged.content == PIXEL  # the same answer: it tells nothing
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "opened"
        assert Event.objects.filter(type="reward.opened").count() == 1
    funnel = api_a.get("/api/v1/reports/rewards").json()
    assert (funnel["delivered"], funnel["opened"], funnel["rates"]["open_rate"]) == (1, 1, 1.0)


def test_a_program_without_open_tracking_sends_no_pixel(api_a, funded_a, shop):
    with tenant_context(funded_a):
        program = program_create(slug="quiet", name="Quiet")
        program.track_email_opens = False
        program.save(update_fields=["track_email_opens"])
    _, html = _emailed(api_a, funded_a, shop.coffee_usd, program="quiet")
    assert PIXEL_URL.search(html) is None and "/e/" not in html


CLICK_URL = re.compile(r'<a href="https?://[^/"]+(/c/[^"]+)"')


def _with_shop_link(shop) -> None:
    brand = shop.coffee_usd.brand
    brand.redemption_url = "https://shop.example/redeem"
    brand.save(update_fields=["redemption_url"])


def test_a_followed_link_marks_the_code_opened_and_goes_only_to_its_own_target(api_a, funded_a, shop, client):
    _with_shop_link(shop)
    reward_id, html = _emailed(api_a, funded_a, shop.coffee_usd)
    path = CLICK_URL.search(html).group(1)
    connection.set_schema_to_public()
    token = path.removeprefix("/c/")
    schema, rid, target = signing.Signer(salt=CLICK_SALT).unsign_object(token)
    assert target == "https://shop.example/redeem"
    _, signature = token.rsplit(":", 1)  # the same signature over another target: refused
    evil = signing.Signer(salt=CLICK_SALT).sign_object([schema, rid, "https://evil.example/"], compress=True)
    other_salt = signing.Signer(salt="another").sign_object([schema, rid, "https://evil.example/"], compress=True)
    for bad in (f"{evil.rsplit(':', 1)[0]}:{signature}", other_salt, token[:-2] + "xx"):
        assert client.get(f"/c/{bad}").status_code == 404
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "delivered"  # a refused link changes nothing
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == "https://shop.example/redeem"
    assert response["Referrer-Policy"] == "no-referrer" and not response.cookies
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "opened"
    funnel = api_a.get("/api/v1/reports/rewards").json()
    assert (funnel["delivered"], funnel["opened"]) == (1, 1)


def test_a_program_without_tracking_links_straight_to_the_target(api_a, funded_a, shop):
    _with_shop_link(shop)
    with tenant_context(funded_a):
        program = program_create(slug="quiet", name="Quiet")
        program.track_email_opens = False
        program.save(update_fields=["track_email_opens"])
    _, html = _emailed(api_a, funded_a, shop.coffee_usd, program="quiet")
    assert CLICK_URL.search(html) is None and 'href="https://shop.example/redeem"' in html
