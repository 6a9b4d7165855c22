"""One claim link, two devices, in real headless Chromium: revealed on a phone, it opens on the laptop too; with
the program's verification on, the laptop first enters the code emailed through the real SMTP sink.
Screenshots in ./var/screenshots/."""

import re

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from catalog.images import brand_logo_set
from catalog.tests.test_logos import png
from core import crypto
from fulfillment.services import reward_fulfil
from funds.services import funds_deposit
from orders.models import Reward
from programs.services import program_create
from tenants.services import api_key_create
from testsupport.api import ApiClient
from testsupport.browser import SCREENSHOTS, chromium_page
from testsupport.catalog import make_shop
from testsupport.orders import link_order

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.WHITENOISE_USE_FINDERS = True  # tests run without collectstatic
    return smtp_server


def _links(tenant) -> tuple[dict[str, str], dict[str, str]]:
    """Two delivered claim links ({"token", "code"}): one plain, one from a program with email verification."""
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=tenant, scopes=["read", "write"])
    shop = make_shop()
    brand_logo_set(brand=shop.coffee_usd.brand, data=png())  # uploaded: served by the app itself
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100.00")
        program_create(slug="careful", name="Careful", sender_name="Acme People Team", verification="email")
    api = ApiClient(raw, key)
    links = []
    for extra in ({}, {"program": "careful"}):
        body = link_order(shop.coffee_usd, recipient={"name": "Ada", "email": "ada.browser@example.com"}) | extra
        created = api.post("/api/v1/orders", body).json()["rewards"][0]
        with tenant_context(tenant):
            reward_fulfil(reward_id=created["id"])
            code = crypto.decrypt(Reward.objects.get(pk=created["id"]).code_encrypted)
        links.append({"token": created["claim_url"].rsplit("/r/", 1)[1], "code": code})
    return links[0], links[1]


def test_a_link_revealed_on_the_phone_opens_on_the_laptop(smtp, committed_tenant, live_http):
    plain, careful = _links(committed_tenant)

    with chromium_page(live_http) as phone:
        browser = phone.context.browser
        phone.set_viewport_size(PHONE)
        phone.goto(f"/r/{plain['token']}")
        phone.get_by_role("button", name="Reveal code").click()
        assert phone.locator("#claim-code").inner_text() == plain["code"]
        assert phone.locator("img.logo").count() == 1
        assert phone.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        phone.screenshot(path=str(SCREENSHOTS / "claim-phone-revealed.png"), full_page=True)

        laptop_context = browser.new_context(base_url=live_http, viewport=LAPTOP)  # a new device: no cookies
        laptop = laptop_context.new_page()
        laptop.goto(f"/r/{plain['token']}")
        assert "not valid" not in laptop.content()
        laptop.get_by_role("button", name="Reveal code").click()
        assert laptop.locator("#claim-code").inner_text() == plain["code"]
        laptop.screenshot(path=str(SCREENSHOTS / "claim-laptop-revealed.png"), full_page=True)

        # verification on: the laptop must enter the code emailed to the recipient first
        laptop.goto(f"/r/{careful['token']}")
        laptop.get_by_role("button", name="Reveal code").click()
        assert careful["code"] not in laptop.content()
        laptop.get_by_role("button", name="Send me a code").click()
        mailed = [m["data"] for m in smtp.messages if "Your code is" in m["data"]]
        one_time = re.search(r"Your code is (\d{6})", mailed[-1]).group(1)
        laptop.get_by_label("One-time code").fill(one_time)
        laptop.screenshot(path=str(SCREENSHOTS / "claim-laptop-verify.png"), full_page=True)
        laptop.get_by_role("button", name="Show my gift").click()
        assert laptop.locator("#claim-code").inner_text() == careful["code"]
        laptop.goto(f"/r/{careful['token']}")  # the laptop is now known: the code shows without asking again
        assert laptop.locator("#claim-code").inner_text() == careful["code"]
        laptop_context.close()
