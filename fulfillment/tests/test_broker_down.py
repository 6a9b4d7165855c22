"""A broker (Redis) outage when a reward is resent: the request still succeeds, the corrected address is kept,
and the lost publish is logged instead of raised after the commit."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from fulfillment.services import reward_fulfil
from funds.selectors import ledger_invariant_violations
from orders.models import Reward
from orders.tests.test_broker_down import broker_unreachable
from testsupport.orders import digital_order


def test_resend_while_the_broker_is_down_keeps_the_corrected_address_and_is_logged(
    api_a, funded_a, shop, django_capture_on_commit_callbacks, caplog
):
    created = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"))
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=reward_id)
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_a.post(f"/api/v1/rewards/{reward_id}/resend", {"email": "ada@corrected.example"})
    assert callbacks, "the resend is published after commit"
    assert response.status_code == 202, response.content
    assert api_a.get(f"/api/v1/rewards/{reward_id}").json()["recipient"]["email"] == "ada@corrected.example"
    assert [r.reward_id for r in caplog.records if getattr(r, "event", "") == "reward.resend_publish_failed"] == [
        reward_id
    ]
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward_id).status == "delivered"
        assert ledger_invariant_violations() == []


def test_resend_outside_a_transaction_says_nothing_was_sent_when_the_broker_is_down(committed_tenant):
    """The API runs without a request transaction: the publish happens at once, and a lost one is a 503 the
    caller can retry, not a 202 for a message that will never go out."""
    from django.test import Client

    from funds.services import funds_deposit
    from tenants.services import api_key_create
    from testsupport.catalog import make_shop

    shop = make_shop()
    _, raw_key = api_key_create(tenant=committed_tenant, name="resend", scopes=["read", "write"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
    created = client.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"), content_type="application/json")
    reward_id = created.json()["rewards"][0]["id"]
    with tenant_context(committed_tenant):
        reward_fulfil(reward_id=reward_id)
    with broker_unreachable():
        response = client.post(
            f"/api/v1/rewards/{reward_id}/resend", {"email": "ada@corrected.example"}, content_type="application/json"
        )
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "service_unavailable" and response.json()["retryable"] is True
    assert "nothing was sent" in response.json()["detail"]
    with tenant_context(committed_tenant):
        reward = Reward.objects.get(pk=reward_id)
        assert reward.recipient_email == "ada@corrected.example" and reward.status == "delivered"
        assert ledger_invariant_violations() == []
