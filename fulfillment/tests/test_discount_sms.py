"""A discount delivered by SMS through the HTTP provider (a real local server standing in for it, the provider
being the one unreachable third party): the text says what the voucher takes off in the recipient's language,
carries the platform-generated code, which no log line holds, and the merchant's report of its use redeems it."""

from __future__ import annotations

import logging
import uuid
from datetime import date

from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create, supplier_upsert
from fulfillment.services import reward_fulfil
from funds.selectors import ledger_invariant_violations
from orders.models import Reward
from testsupport.orders import digital_order

from .test_suppliers import sms_provider  # noqa: F401  (the HTTP provider's fixture, asked for by name below)


def test_a_discount_sent_by_sms_in_malay_reaches_the_phone_and_is_redeemed(
    api_a, funded_a, make_partner_client, caplog, request
):
    provider = request.getfixturevalue("sms_provider")
    caplog.set_level(logging.DEBUG)
    tag = uuid.uuid4().hex[:6]
    product = product_create(
        brand=brand_upsert(slug=f"kedai-kopi-sms-{tag}", name="Kedai Kopi"), name="Kedai Kopi 20% off",
        type="discount", currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="20", valid_until=date(2027, 12, 31),
        supplier=supplier_upsert(code=f"discounts-{tag}", name="Generated codes", kind="generated"),
    )  # fmt: skip
    body = digital_order(product, "10.00")
    body["rewards"][0].update(delivery_method="sms", recipient={"name": "Siti", "phone": "+60123456789",
                                                                "locale": "ms"})  # fmt: skip
    created = api_a.post("/api/v1/orders", body)
    assert created.status_code == 201, created.content
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
        reward = Reward.objects.get(pk=reward_id)
    assert reward.status == "delivered", reward.failure_reason
    [sms] = provider.messages
    assert sms["To"] == "+60123456789" and sms["From"] == "+15005550006"
    [code] = [word.rstrip(".") for word in sms["Body"].split() if word.startswith("DSC-")]
    assert sms["Body"].endswith(f"Kod anda: {code}") and "Diskaun 20% di Kedai Kopi sehingga 31 Disember 2027" in sms[
        "Body"]  # fmt: skip
    assert "gift card" not in sms["Body"] and "kad hadiah" not in sms["Body"]
    assert reward.code_last4 == code[-4:] and code not in reward.code_encrypted

    merchant = make_partner_client(funded_a, name="Kedai Kopi", scope="discounts:report")
    used = merchant.post("/api/v1/discounts/redemptions", {"code": code})
    assert used.status_code == 201, used.content
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["status"] == "redeemed"
    assert code not in caplog.text and provider.TOKEN not in caplog.text
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []
