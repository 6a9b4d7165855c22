"""What a write notes for the sweeps (tenants.due) now that one trigger notes several kinds at once (tenants 0016,
orders 0025): each kind once per transaction and schema, a status kind only when a written row has one of its
statuses, the approval kind only for an order that waits, and the rollups kind for the deltas the order wrote."""

from __future__ import annotations

from django.db import connection

from orders.models import Reward, RewardStatus
from tenants.due import KINDS
from tenants.models import TenantDueEvent
from tenants.policies import approval_policy_set
from testsupport.orders import digital_order


def _noted(schema: str) -> list[str]:
    """The kinds noted for `schema` so far, one entry per note, and a fresh start for the next write: the notes are
    deleted and the transaction forgets what it noted (as a sweep's visit does)."""
    kinds = sorted(TenantDueEvent.objects.filter(schema_name=schema).values_list("kind", flat=True))
    TenantDueEvent.objects.filter(schema_name=schema).delete()
    with connection.cursor() as cursor:
        for kind in KINDS:
            cursor.execute("SELECT set_config(%s, '', true)", [f"rp_due.{kind}"])
    return kinds


def test_an_order_notes_each_kind_it_makes_work_for_once(api_a, funded_a, shop):
    schema = funded_a.schema_name
    _noted(schema)
    first = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"), HTTP_IDEMPOTENCY_KEY="first")
    assert first.status_code == 201, first.content
    # A second order in the same transaction notes nothing more: each kind is noted once per transaction.
    second = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"), HTTP_IDEMPOTENCY_KEY="second")
    assert second.status_code == 201
    assert _noted(schema) == ["fulfilment", "idempotency", "metrics", "rollups"]
    third = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"))  # no Idempotency-Key
    assert third.status_code == 201
    assert _noted(schema) == ["fulfilment", "metrics", "rollups"]
    reward_id = first.json()["rewards"][0]["id"]

    connection.set_tenant(funded_a)
    Reward.objects.filter(pk=reward_id).update(status=RewardStatus.PROCESSING)
    assert _noted(schema) == ["fulfilment", "metrics", "rollups"]
    Reward.objects.filter(pk=reward_id).update(status=RewardStatus.DELIVERED)
    assert _noted(schema) == ["expiry", "metrics", "reminders", "rollups"]
    Reward.objects.filter(pk=reward_id).update(status=RewardStatus.FAILED)
    assert _noted(schema) == ["metrics", "rollups"]


def test_only_an_order_that_waits_for_approval_notes_the_approval_sweep(api_a, funded_a, shop):
    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "20.00"}, "expires_after_days": 3}, actor=None)
    schema = funded_a.schema_name
    _noted(schema)
    assert api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00")).status_code == 201
    assert "order_approvals" not in _noted(schema)
    waiting = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00"))
    assert waiting.status_code == 202, waiting.content
    assert "order_approvals" in _noted(schema)


def test_a_hold_writes_no_spend_delta_and_a_capture_does(api_a, funded_a, shop):
    from fulfillment.services import reward_fulfil
    from orders.models import SpendStatDelta

    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00"))
    assert response.status_code == 201
    connection.set_tenant(funded_a)
    assert not SpendStatDelta.objects.exists()
    reward_fulfil(reward_id=response.json()["rewards"][0]["id"])
    assert list(SpendStatDelta.objects.values_list("captures", "refunds")) == [(1, 0)]
