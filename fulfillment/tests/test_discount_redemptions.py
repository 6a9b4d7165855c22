"""A merchant reports that a discount code was used: with its operator-issued `discounts:report` key only, once,
safely retried, and never about another tenant's codes."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from core import crypto
from fulfillment.models import DiscountRedemption
from fulfillment.services import reward_fulfil
from funds.selectors import ledger_invariant_violations
from orders.models import Reward
from testsupport.orders import digital_order, link_order
from testsupport.problems import assert_problem
from webhooks.models import Event

URL = "/api/v1/discounts/redemptions"


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    return smtp_server


@pytest.fixture
def discount_product(db):
    brand = brand_upsert(slug="kedai-kopi", name="Kedai Kopi")
    return product_create(
        brand=brand, name="Kedai Kopi 20% off", type="discount", currency="USD", countries=["US"],
        denomination_type="fixed", denomination_values=["10"], discount_kind="percent", discount_value="20",
        valid_until=date(2026, 12, 31),
    )  # fmt: skip


def _discount_issued(api, tenant, product) -> tuple[str, str]:
    """A discount reward delivered through the API; returns (reward id, the code the shopper holds)."""
    body = digital_order(product, amount="10.00")
    body["rewards"][0]["delivery_method"] = "api"
    created = api.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward_id = api.get(f"/api/v1/orders/{created.json()['id']}").json()["rewards"][0]["id"]
    with tenant_context(tenant):
        reward_fulfil(reward_id=reward_id)
    revealed = api.post(f"/api/v1/rewards/{reward_id}/reveal", {})
    assert revealed.status_code == 200, revealed.content
    return reward_id, revealed.json()["code"]


def _usage(tenant, reward_id) -> tuple:
    with tenant_context(tenant):
        assert ledger_invariant_violations() == []
        return (
            Reward.objects.get(pk=reward_id).status,
            DiscountRedemption.objects.count(),
            Event.objects.filter(type="discount.redeemed").count(),
        )


def test_a_merchant_reports_a_discount_used_and_a_retry_is_safe(
    api_a, tenant_a, funded_a, discount_product, make_partner_client
):
    reward_id, code = _discount_issued(api_a, tenant_a, discount_product)
    merchant = make_partner_client(tenant_a, name="Kedai Kopi", scope="discounts:report")
    report = {"code": code, "order_amount": "84.50", "order_currency": "usd", "redeemed_at": "2026-12-06T14:03:00Z"}

    first = merchant.post(URL, report)
    assert first.status_code == 201, first.content
    assert first.json() | {"reported_at": None} == {
        "reward_id": reward_id,
        "reference": first.json()["reference"],
        "code_last4": code[-4:],
        "status": "redeemed",
        "order_amount": "84.5",
        "order_currency": "USD",
        "redeemed_at": "2026-12-06T14:03:00Z",
        "reported_at": None,
    }
    assert _usage(tenant_a, reward_id) == ("redeemed", 1, 1)
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["status"] == "redeemed"
    with tenant_context(tenant_a):
        event = Event.objects.get(type="discount.redeemed")
        assert event.data["reward_id"] == reward_id and code not in str(event.data)

    replay = merchant.post(URL, report)  # the merchant's retry after a timeout
    assert (replay.status_code, replay.json()) == (200, first.json())
    by_id = merchant.post(URL, {"reward_id": reward_id, "order_amount": "84.50", "order_currency": "USD"})
    assert (by_id.status_code, by_id.json()) == (200, first.json())  # no time given: the same report
    second_use = merchant.post(URL, {"code": code, "order_amount": "12.00", "order_currency": "USD"})
    assert_problem(second_use, 409, "already_redeemed")  # a second use of a single-use voucher
    again = merchant.post(URL, {"code": code})
    assert_problem(again, 409, "already_redeemed")
    assert _usage(tenant_a, reward_id) == ("redeemed", 1, 1)


def test_only_the_tenants_merchant_key_reports_and_only_its_own_codes(
    api_a, tenant_a, tenant_b, funded_a, discount_product, make_partner_client, make_api_client, shop
):
    reward_id, code = _discount_issued(api_a, tenant_a, discount_product)
    intruder = make_partner_client(tenant_b, name="Other merchant", scope="discounts:report")
    for body in ({"code": code}, {"reward_id": reward_id}, {"code": "DSC-NEVER-ISSUED"}):
        assert_problem(intruder.post(URL, body), 404, "not_found", f"tenant B's merchant: {body}")
    own_merchant = make_partner_client(tenant_a, name="Kedai Kopi", scope="discounts:report")
    assert_problem(own_merchant.post(URL, {"code": code[:-1] + "#"}), 404, "not_found")
    # A gift card is not a discount: its code can never be "redeemed" by a merchant's report.
    gift = digital_order(shop.coffee_usd, amount="10.00")
    gift["rewards"][0]["delivery_method"] = "api"
    gift_reward = api_a.post("/api/v1/orders", gift).json()
    gift_id = api_a.get(f"/api/v1/orders/{gift_reward['id']}").json()["rewards"][0]["id"]
    assert_problem(own_merchant.post(URL, {"reward_id": gift_id}), 404, "not_found")
    # The tenant's own keys (any scope) and the shipping partner's key are refused: usage is the merchant's word.
    for client in (
        make_api_client(tenant_a, scopes=["read", "write", "approve"]),
        make_partner_client(tenant_a, name="ShipCo"),
    ):
        assert_problem(client.post(URL, {"code": code}), 403, "forbidden")
    assert_problem(own_merchant.post(URL, {"order_amount": "5.00"}), 422, "validation_error")
    assert_problem(own_merchant.post(URL, {"code": code, "order_amount": "5.00"}), 422, "validation_error")
    # And a merchant key reads nothing of the tenant's.
    assert_problem(own_merchant.get(f"/api/v1/rewards/{reward_id}"), 403, "forbidden")
    assert _usage(tenant_a, reward_id) == ("delivered", 0, 0)


@pytest.mark.parametrize(
    ("locale", "headline"),
    [
        ("en", "20% off at Kedai Kopi until 31 December 2026"),
        ("ms", "Diskaun 20% di Kedai Kopi sehingga 31 Disember 2026"),
    ],
)
def test_a_discount_email_says_what_it_takes_off_in_the_recipients_language(
    api_a, tenant_a, funded_a, discount_product, smtp, locale, headline
):
    to = f"siti-{locale}@example.com"
    body = digital_order(discount_product, amount="10.00")
    body["rewards"][0]["recipient"] = {"name": "Siti", "email": to, "locale": locale}
    created = api_a.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(tenant_a):
        reward_fulfil(reward_id=reward_id)
        code = crypto.decrypt(Reward.objects.get(pk=reward_id).code_encrypted)
    [text] = [t for t, m in zip(smtp.texts(), smtp.messages, strict=True) if m["to"] == [to]]
    assert headline in text and text.count(code) == 2  # the text and the HTML part, each once
    assert "USD" not in text and "$10" not in text  # a discount's face value is not what it is worth


def test_the_claim_page_says_what_a_discount_takes_off(api_a, funded_a, discount_product):
    created = api_a.post("/api/v1/orders", link_order(discount_product, amount="10.00"))
    assert created.status_code == 201, created.content
    claim_url = created.json()["rewards"][0]["claim_url"]
    page = Client(HTTP_HOST="localhost").get(claim_url[claim_url.index("/r/") :], HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "20% off at Kedai Kopi until 31 December 2026" in page.content.decode()


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({}, "discount_value"),
        ({"discount_kind": "percent", "discount_value": "150"}, "discount_value"),
        ({"discount_kind": "amount", "discount_value": "5.001"}, "discount_value"),
        ({"discount_kind": "percent", "discount_value": "10", "valid_from": date(2027, 1, 2),
          "valid_until": date(2027, 1, 1)}, "valid_until"),
    ],
)  # fmt: skip
def test_a_discount_product_must_say_what_it_takes_off(db, terms, field):
    from core.errors import ApplicationError

    brand = brand_upsert(slug="kedai-roti", name="Kedai Roti")
    with pytest.raises(ApplicationError) as refused:
        product_create(
            brand=brand, name="Kedai Roti deal", type="discount", currency="USD", countries=["US"],
            denomination_type="fixed", denomination_values=["10"], **terms,
        )  # fmt: skip
    assert field in refused.value.errors


def test_platform_generated_discount_codes_are_emailed_once_and_redeemable(
    api_a, tenant_a, funded_a, smtp, make_partner_client
):
    from catalog.models import Supplier

    generated = Supplier.objects.create(code="platform-discounts", name="Platform discounts", kind="generated")
    product = product_create(
        brand=brand_upsert(slug="kedai-buku", name="Kedai Buku"), name="RM5 off", type="discount", currency="USD",
        countries=["US"], denomination_type="fixed", denomination_values=["5"], supplier=generated,
        discount_kind="amount", discount_value="5",
    )  # fmt: skip
    codes = []
    for to in ("a@example.com", "b@example.com"):
        body = digital_order(product, amount="5.00")
        body["rewards"][0]["recipient"] = {"name": "Siti", "email": to}
        reward_id = api_a.post("/api/v1/orders", body).json()["rewards"][0]["id"]
        with tenant_context(tenant_a):
            reward_fulfil(reward_id=reward_id)
            stored = Reward.objects.get(pk=reward_id)
            code = crypto.decrypt(stored.code_encrypted)
            assert code not in stored.code_encrypted  # encrypted at rest
        [text] = [t for t, m in zip(smtp.texts(), smtp.messages, strict=True) if m["to"] == [to]]
        assert "$5.00 USD off at Kedai Buku" in text and text.count(code) == 2  # the text and HTML parts
        codes.append(code)
    assert codes[0] != codes[1] and all(c.startswith("DSC-") and len(c) == 23 for c in codes)
    merchant = make_partner_client(tenant_a, name="Kedai Buku", scope="discounts:report")
    assert merchant.post(URL, {"code": codes[1]}).status_code == 201
