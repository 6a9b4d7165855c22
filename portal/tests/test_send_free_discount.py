"""A free (merchant-funded) discount in the portal's Send: the catalogue says it is free to send, the cost preview
shows 0.00 and that nothing is held, and a tenant with no balance at all sends it."""

from __future__ import annotations

import re
from datetime import date

from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from funds.models import LedgerTransaction
from orders.models import Order
from testsupport.portal import make_staff, portal_client, sign_in


def _hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html)[1]


def test_a_free_discount_is_previewed_at_zero_and_sent_without_funds(tenant_b, db):
    product = product_create(
        brand=brand_upsert(slug="kedai-portal-free", name="Kedai Kopi"), name="Kedai Kopi 20% off",
        type="discount", currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="20", valid_until=date(2027, 12, 31), zero_cost=True,
    )  # fmt: skip
    client = portal_client(tenant_b)  # beta has no funds in any currency
    sign_in(client, make_staff(tenant_b, "manager@beta.test", "manager").email)
    catalogue = client.get("/send/", {"q": "Kedai"}).content.decode()
    assert "free to send (merchant-funded)" in catalogue
    form = client.get(f"/send/{product.id}/").content.decode()
    data = {"amount": "10.00", "recipients": "Ada Lovelace, ada@example.com", "delivery_method": "email",
            "message": "On us", "sender_name": "", "idempotency_key": _hidden(form, "idempotency_key")}  # fmt: skip
    preview = client.post(f"/send/{product.id}/", {**data, "action": "preview"}).content.decode()
    assert 'data-testid="cost-total">0.00' in preview and 'data-testid="zero-cost-note"' in preview
    assert "cannot be funded" not in preview and "not enough" not in preview
    sent = client.post(f"/send/{product.id}/", {**data, "action": "send", "quote_hash": _hidden(preview, "quote_hash")})
    assert sent.status_code == 302, sent.content.decode()[-2000:]
    with tenant_context(tenant_b):
        assert Order.objects.get().total_amount == 0 and not LedgerTransaction.objects.exists()
