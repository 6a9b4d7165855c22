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
