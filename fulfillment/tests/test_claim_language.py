"""The recipient's language: chosen when the reward is created (recipient → program → tenant), else the browser's;
the claim page and its switch, the dead-link page, and the email and SMS a Malay recipient gets."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from fulfillment.delivery import reward_sms_text
from fulfillment.services import reward_fulfil
from orders.models import Reward
from programs.services import program_create
from testsupport.orders import digital_order


def _link(api, product, *, locale: str | None = None, **overrides) -> tuple[str, str, dict]:
    recipient = {"name": "Siti Nurhaliza"} | ({"locale": locale} if locale is not None else {})
    reward = {
        "product_id": str(product.id),
        "amount": "25.00",
        "currency": product.currency,
        "delivery_method": "link",
        "recipient": recipient,
        "sender_name": "Pasukan HR Acme",
    }
    response = api.post("/api/v1/orders", {"type": "link", "rewards": [reward], **overrides})
    assert response.status_code == 201, response.content
    [created] = response.json()["rewards"]
    return created["id"], created["claim_url"].rsplit("/r/", 1)[1], created


def _lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)">', html).group(1)


def test_a_malay_recipients_claim_page_is_in_malay_with_a_switch_to_english(api_a, funded_a, shop):
    reward_id, token, created = _link(api_a, shop.coffee_usd, locale="ms-MY")
    assert created["locale"] == "ms"
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    browser = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")

    page = browser.get(f"/r/{token}")

    html = page.content.decode()
    assert page.status_code == 200 and _lang(html) == "ms" and page["Content-Language"] == "ms"
    assert "Tunjukkan kod" in html and "Pasukan HR Acme menghantar hadiah kepada anda" in html
    assert "Reveal code" not in html
    assert f'href="/r/{token}?lang=en"' in html and '<span aria-current="true" lang="ms">Bahasa Melayu</span>' in html

    english = browser.get(f"/r/{token}?lang=en")
    assert _lang(english.content.decode()) == "en" and "Reveal code" in english.content.decode()
    cookie = english.cookies["rp_lang"]
    assert cookie.value == "en" and cookie["path"] == "/r/" and cookie["httponly"]
    # the choice holds for the rest of the visit: revealing (a POST, no ?lang=) stays in English
    revealed = browser.post(f"/r/{token}/reveal")
    assert revealed.status_code == 200 and "Your code" in revealed.content.decode()
    assert _lang(revealed.content.decode()) == "en"


def test_the_language_falls_back_to_the_program_then_the_tenant_then_the_browser(api_a, funded_a, shop):
    with tenant_context(funded_a):
        program_create(slug="ganjaran", name="Ganjaran", default_locale="ms")
    _, _, from_program = _link(api_a, shop.coffee_usd, program="ganjaran")
    _, _, recipient_wins = _link(api_a, shop.coffee_usd, locale="en", program="ganjaran")
    _, unnamed_token, unnamed = _link(api_a, shop.coffee_usd)
    funded_a.default_locale = "ms"
    funded_a.save(update_fields=["default_locale"])
    _, _, from_tenant = _link(api_a, shop.coffee_usd)

    assert (from_program["locale"], recipient_wins["locale"], from_tenant["locale"]) == ("ms", "en", "ms")
    assert unnamed["locale"] is None
    # named nowhere: the browser decides, and a language the platform does not speak falls back to English
    malay_browser = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="fr;q=1, ms-MY;q=0.8, en;q=0.5")
    assert _lang(malay_browser.get(f"/r/{unnamed_token}").content.decode()) == "ms"
    french_browser = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="fr")
    assert _lang(french_browser.get(f"/r/{unnamed_token}").content.decode()) == "en"


def test_an_unknown_language_is_refused_and_creates_nothing(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd)
    body["rewards"][0]["recipient"]["locale"] = "xx-YY"

    response = api_a.post("/api/v1/orders", body)

    assert response.status_code == 422
    assert "rewards[0].recipient.locale" in response.json()["errors"]
    with tenant_context(funded_a):
        assert not Reward.objects.exists()


def test_a_dead_link_answers_in_the_browsers_language():
    page = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="ms").get("/r/no-such-token")

    assert page.status_code == 404 and _lang(page.content.decode()) == "ms"
    assert "Pautan ini tidak sah" in page.content.decode()


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


def test_the_malay_email_and_sms(api_a, funded_a, shop, smtp):
    body = digital_order(shop.coffee_usd)
    body["rewards"][0].update(
        recipient={"name": "Siti", "email": "siti@contoh.my", "locale": "ms"}, sender_name="Pasukan HR Acme"
    )
    response = api_a.post("/api/v1/orders", body)
    reward_id = response.json()["rewards"][0]["id"]

    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        sms = reward_sms_text(Reward.objects.select_related("order__program").get(pk=reward_id))

    [data] = [m["data"] for m in smtp.messages if m["to"] == ["siti@contoh.my"]]
    message = email.message_from_string(data, policy=policy.default)
    assert message["Subject"] == "Pasukan HR Acme menghantar hadiah Lumen Coffee kepada anda"
    assert message["From"].addresses[0].display_name == f"Pasukan HR Acme melalui {funded_a.name}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Pasukan HR Acme menghantar hadiah kepada anda!" in text and "Kod anda:" in text
    assert "Simpan mesej ini dengan selamat" in text and "Keep this message" not in text
    assert '<html lang="ms">' in html and "Kod anda" in html and "Your code" not in html
    assert sms.startswith("Pasukan HR Acme menghantar kad hadiah Lumen Coffee bernilai USD25.00 kepada anda: ")


def test_a_malaysian_gift_asks_for_a_state_from_the_list_and_answers_in_malay(api_a, tenant_a, shop):
    from catalog.services import product_create, shipping_method_upsert
    from fulfillment.claim_links import claim_link_issue
    from funds.services import funds_deposit

    with tenant_context(tenant_a):
        funds_deposit(currency="MYR", amount="500.00")
    box = product_create(brand=shop.hamper_usd.brand, name="Batik Box", type="physical", currency="MYR",
                         countries=["MY"], denomination_type="fixed", denomination_values=["80"])  # fmt: skip
    parcel = shipping_method_upsert(name="Standard (Malaysia)", carrier="Kenari Express", countries=["MY"],
                                    price="8.00", currency="MYR", estimated_days=3)  # fmt: skip
    address = {"name": "Siti Aminah", "line1": "Jalan Ampang 12", "city": "Kuala Lumpur", "state": "Penang",
               "postal_code": "10050", "country": "MY"}  # fmt: skip
    body = {"type": "physical", "rewards": [{"product_id": str(box.id), "amount": "80", "currency": "MYR",
            "recipient": {"name": "Siti", "email": "siti@contoh.my", "locale": "ms"}, "shipping_address": address,
            "shipping_method_id": str(parcel.id)}]}  # fmt: skip
    response = api_a.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    with tenant_context(tenant_a):
        token = claim_link_issue(reward_id=response.json()["rewards"][0]["id"]).rsplit("/r/", 1)[1]
    browser = Client(HTTP_HOST="localhost")

    page = browser.get(f"/r/{token}").content.decode()

    assert "Ke manakah hadiah anda perlu dihantar?" in page
    assert '<select id="address-state" name="state"' in page and "<option selected>Pulau Pinang</option>" in page
    assert page.count("<option") == 17  # "Pilih…" and the 13 states and 3 federal territories
    bad = browser.post(f"/r/{token}/address", {**address, "postal_code": "1005", "state": "Singapura"})
    errors = bad.content.decode()
    assert bad.status_code == 422
    assert "Poskod MY tidak sah: gunakan 5 digit (cth. 50450)." in errors and "Bukan negeri di MY" in errors
