"""Email opens count in the funnel: the reward email's pixel, or a followed link of it, marks the reward opened
once (reward.opened, the reports' `opened`); a bad or replayed pixel changes nothing, a link redirects only to
its own signed target, and a program can switch both off."""

import re
from datetime import timedelta

from django.core import mail, signing
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from fulfillment.engagement import CLICK_SALT, PIXEL
from fulfillment.services import reward_fulfil
from orders.models import Reward
from programs.services import program_create
from testsupport.orders import digital_order
from webhooks.models import Event

PIXEL_URL = re.compile(r'<img src="https?://[^/"]+(/e/[^"]+\.gif)"')


def _emailed(api, tenant, product, *, read_later: bool = True, **order_fields) -> tuple[str, str]:
    """A reward emailed to its recipient: its id and the email's HTML. `read_later`: delivered a minute ago, so
    what the test fetches next is the reader's doing, not a mail scanner's at delivery."""
    response = api.post("/api/v1/orders", digital_order(product, "25.00", **order_fields))
    assert response.status_code == 201, response.content
    reward_id = response.json()["rewards"][0]["id"]
    mail.outbox.clear()
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
        if read_later:
            Reward.objects.filter(pk=reward_id).update(delivered_at=timezone.now() - timedelta(minutes=1))
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
    assert (funnel["delivered"], funnel["opened"], funnel["clicked"]) == (1, 1, 1)


def test_a_program_without_tracking_links_straight_to_the_target(api_a, funded_a, shop):
    _with_shop_link(shop)
    with tenant_context(funded_a):
        program = program_create(slug="quiet", name="Quiet")
        program.track_email_opens = False
        program.save(update_fields=["track_email_opens"])
    _, html = _emailed(api_a, funded_a, shop.coffee_usd, program="quiet")
    assert CLICK_URL.search(html) is None and 'href="https://shop.example/redeem"' in html


def _funnel(api) -> tuple[int, ...]:
    body = api.get("/api/v1/reports/rewards").json()
    return tuple(body[stage] for stage in ("sent", "delivered", "opened", "clicked", "redeemed"))


def test_a_scanner_fetching_at_delivery_is_not_an_open_and_the_reader_later_is(api_a, funded_a, shop, client):
    _with_shop_link(shop)
    reward_id, html = _emailed(api_a, funded_a, shop.coffee_usd, read_later=False)
    pixel, link = PIXEL_URL.search(html).group(1), CLICK_URL.search(html).group(1)
    connection.set_schema_to_public()
    assert client.get(pixel).content == PIXEL  # the mail server's image proxy, as the message arrives
    assert client.get(link)["Location"] == "https://shop.example/redeem"  # its link checker: still redirected
    with tenant_context(funded_a):
        reward = Reward.objects.get(pk=reward_id)
        assert (reward.status, reward.opened_at, reward.clicked_at) == ("delivered", None, None)
    assert _funnel(api_a) == (1, 1, 0, 0, 0)
    with tenant_context(funded_a):
        Reward.objects.filter(pk=reward_id).update(delivered_at=timezone.now() - timedelta(minutes=5))
    client.get(pixel)  # the recipient, five minutes later
    assert _funnel(api_a) == (1, 1, 1, 0, 0)


def test_a_click_without_images_counts_as_opened_and_clicked_once(api_a, funded_a, shop, client):
    _with_shop_link(shop)
    reward_id, html = _emailed(api_a, funded_a, shop.coffee_usd)
    link = CLICK_URL.search(html).group(1)
    connection.set_schema_to_public()
    for _ in range(3):
        assert client.get(link).status_code == 302
    client.get(PIXEL_URL.search(html).group(1))  # images shown afterwards: nothing more to count
    with tenant_context(funded_a):
        reward = Reward.objects.get(pk=reward_id)
        assert reward.status == "opened" and reward.opened_at is not None and reward.clicked_at is not None
        assert Event.objects.filter(type="reward.opened").count() == 1
    assert _funnel(api_a) == (1, 1, 1, 1, 0)


def test_a_click_after_the_pixel_adds_the_click_and_an_opened_reward_that_expires_stays_opened(
    api_a, funded_a, shop, client
):
    from orders.lifecycle import reward_transition
    from orders.selectors import reward_lock

    _with_shop_link(shop)
    opened_then_clicked, html = _emailed(api_a, funded_a, shop.coffee_usd)
    connection.set_schema_to_public()
    client.get(PIXEL_URL.search(html).group(1))
    assert _funnel(api_a) == (1, 1, 1, 0, 0)
    client.get(CLICK_URL.search(html).group(1))
    assert _funnel(api_a) == (1, 1, 1, 1, 0)
    redeemed_unseen, _ = _emailed(api_a, funded_a, shop.coffee_usd)  # redeemed at the till, email never opened
    never_opened, _ = _emailed(api_a, funded_a, shop.coffee_usd)
    with tenant_context(funded_a):
        reward_transition(reward=reward_lock(redeemed_unseen), to="redeemed", note="merchant report")
        reward_transition(reward=reward_lock(opened_then_clicked), to="expired", note="claim-by passed")
    sent, delivered, opened, clicked, redeemed = _funnel(api_a)
    assert (sent, delivered, opened, clicked, redeemed) == (3, 3, 2, 1, 1)
    assert sent >= delivered >= opened >= clicked and opened >= redeemed
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=never_opened).opened_at is None
        from funds.selectors import ledger_invariant_violations

        assert ledger_invariant_violations() == []
