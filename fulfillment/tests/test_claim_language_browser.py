"""The same reward's claim page in Malay and English, in real headless Chromium at laptop (1366 px) and phone (390 px)
widths: the recipient's language first, the switch to the other, nothing wider than the screen. Screenshots in
./var/screenshots/ (git-ignored; CI keeps them as artefacts)."""

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from fulfillment.services import reward_fulfil
from funds.services import funds_deposit
from tenants.services import api_key_create
from testsupport.api import ApiClient
from testsupport.browser import SCREENSHOTS, chromium_page
from testsupport.catalog import make_shop
from testsupport.orders import link_order

SIZES = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
WORDS = {"ms": ("Tunjukkan kod", "Pasukan HR Acme menghantar hadiah kepada anda"),
         "en": ("Reveal code", "Pasukan HR Acme sent you a gift")}  # fmt: skip


@pytest.fixture
def static_files(settings):
    settings.WHITENOISE_USE_FINDERS = True  # tests run without collectstatic


def _malay_link(tenant) -> str:
    connection.set_schema_to_public()
    key, raw = api_key_create(tenant=tenant, scopes=["read", "write"])
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="100.00")
    body = link_order(shop.coffee_usd, recipient={"name": "Siti", "email": "siti@contoh.my", "locale": "ms"},
                      sender_name="Pasukan HR Acme")  # fmt: skip
    created = ApiClient(raw, key).post("/api/v1/orders", body).json()["rewards"][0]
    with tenant_context(tenant):
        reward_fulfil(reward_id=created["id"])
    return created["claim_url"].rsplit("/r/", 1)[1]


def _shows(page, language: str) -> None:
    button, eyebrow = WORDS[language]
    assert page.locator("html").get_attribute("lang") == language
    assert page.get_by_role("button", name=button).is_visible()
    assert page.get_by_text(eyebrow).is_visible()
    # nothing sideways: the page is no wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_the_same_claim_page_in_malay_and_english_on_a_laptop_and_a_phone(static_files, committed_tenant, live_http):
    token = _malay_link(committed_tenant)

    with chromium_page(live_http) as page:
        for device, size in SIZES.items():
            context = page.context.browser.new_context(base_url=live_http, viewport=size, locale="en-GB")
            tab = context.new_page()
            tab.goto(f"/r/{token}")
            _shows(tab, "ms")  # the reward's language, though the browser asks for English
            tab.screenshot(path=str(SCREENSHOTS / f"claim-ms-{device}.png"), full_page=True)

            tab.get_by_role("link", name="English").click()
            tab.wait_for_url(f"**/r/{token}?lang=en")
            _shows(tab, "en")
            tab.screenshot(path=str(SCREENSHOTS / f"claim-en-{device}.png"), full_page=True)
            tab.goto(f"/r/{token}")  # the choice is remembered on this device
            _shows(tab, "en")
            tab.get_by_role("link", name="Bahasa Melayu").click()
            _shows(tab, "ms")
            context.close()
