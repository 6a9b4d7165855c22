"""Zero-cost (merchant-funded) discounts: sent free through orders, bulk batches and approvals, through every step
of a reward's life, with no funds hold ever made, captured, released or refunded for them, while a priced reward
still cannot hold 0. Every test ends with the funds ledger's invariants."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_tenants.utils import tenant_context

from batches.models import BatchHold
from batches.processing import batch_process
from catalog.models import Supplier
from catalog.services import brand_upsert, product_create
from core.errors import ApplicationError
from fulfillment.services import reward_fulfil
from funds.models import Hold, LedgerTransaction
from funds.selectors import ledger_invariant_violations
from funds.services import funds_hold
from orders.models import Reward
from orders.tasks import rewards_expire_task
from tenants.policies import approval_policy_set
from testsupport.batches import csv_bytes, digital_rows, upload
from testsupport.funds import balances
from testsupport.orders import digital_order, link_order
from testsupport.problems import assert_problem


@pytest.fixture
def free_discount(db):
    """Kedai Kopi's 20% off, funded by the merchant: face value 10.00 USD, price to the tenant nothing."""
    return product_create(
        brand=brand_upsert(slug="kedai-kopi-free", name="Kedai Kopi"), name="Kedai Kopi 20% off (free)",
        type="discount", currency="USD", countries=["US"], denomination_type="fixed", denomination_values=["10"],
        discount_kind="percent", discount_value="20", valid_until=date(2027, 12, 31), zero_cost=True,
    )  # fmt: skip


def _books(tenant) -> tuple[Decimal, Decimal, int, int]:
    """(available, held, ledger transactions, holds) of tenant's USD; the invariants hold."""
    with tenant_context(tenant):
        assert ledger_invariant_violations() == []
        _, held, available = balances("USD")
        return available, held, LedgerTransaction.objects.count(), Hold.objects.count()


def _send(api, product, *, method="email", link=False, **fields) -> dict:
    body = link_order(product, "10.00") if link else digital_order(product, "10.00")
    body["rewards"][0]["delivery_method"] = method
    body.update(fields)
    response = api.post("/api/v1/orders", body)
    assert response.status_code in (201, 202), response.content
    return response.json()


def test_a_free_discount_is_sent_and_delivered_without_any_funds_moving(api_a, funded_a, free_discount):
    listed = api_a.get(f"/api/v1/products/{free_discount.id}").json()
    assert listed["zero_cost"] is True and listed["denominations"] == {"type": "fixed", "values": ["10.00"]}
    before = _books(funded_a)
    order = _send(api_a, free_discount)
    [reward] = order["rewards"]
    assert order["total"]["amount"] == "0.00" and order["status"] == "pending"
    assert (reward["amount"], reward["charge"]) == ("10.00", {"amount": "0.00", "currency": "USD"})
    with tenant_context(funded_a):
        assert Reward.objects.get(pk=reward["id"]).hold_id is None
        reward_fulfil(reward_id=reward["id"])
    assert api_a.get(f"/api/v1/rewards/{reward['id']}").json()["status"] == "delivered"
    assert api_a.get(f"/api/v1/orders/{order['id']}").json()["status"] == "completed"
    assert _books(funded_a) == before  # nothing held, captured or posted


def test_a_tenant_with_no_funds_at_all_can_send_a_free_discount(api_b, tenant_b, free_discount, shop):
    assert _books(tenant_b)[:2] == (0, 0)
    order = _send(api_b, free_discount, method="api")
    with tenant_context(tenant_b):
        reward_fulfil(reward_id=order["rewards"][0]["id"])
    assert api_b.post(f"/api/v1/rewards/{order['rewards'][0]['id']}/reveal").json()["code"]
    # A priced product from the same tenant is still refused for want of funds.
    assert_problem(api_b.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00")), 402, "insufficient_funds")
    assert _books(tenant_b) == (0, 0, 0, 0)


def test_canceling_failing_and_expiring_free_rewards_returns_no_money(api_a, funded_a, free_discount):
    before = _books(funded_a)
    pending = _send(api_a, free_discount)["rewards"][0]
    assert api_a.post(f"/api/v1/rewards/{pending['id']}/cancel").json()["status"] == "canceled"
    whole_order = _send(api_a, free_discount)
    assert api_a.post(f"/api/v1/orders/{whole_order['id']}/cancel").json()["status"] == "canceled"

    delivered = _send(api_a, free_discount, method="api")["rewards"][0]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=delivered["id"])
    assert api_a.post(f"/api/v1/rewards/{delivered['id']}/reveal").status_code == 200
    canceled = api_a.post(f"/api/v1/rewards/{delivered['id']}/cancel")  # the sandbox voids the code first
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

    supplier = Supplier.objects.get(pk=free_discount.supplier_id)
    supplier.config = {"products": {str(free_discount.id): {"fail": "permanent"}}}
    supplier.save(update_fields=["config"])
    refused = _send(api_a, free_discount)["rewards"][0]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=refused["id"])
    assert api_a.get(f"/api/v1/rewards/{refused['id']}").json()["status"] == "failed"
    supplier.config = {}
    supplier.save(update_fields=["config"])

    unclaimed = _send(api_a, free_discount, link=True)["rewards"][0]
    with tenant_context(funded_a):
        reward_fulfil(reward_id=unclaimed["id"])
        Reward.objects.filter(pk=unclaimed["id"]).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    assert rewards_expire_task() == 1
    assert api_a.get(f"/api/v1/rewards/{unclaimed['id']}").json()["status"] == "expired"
    assert _books(funded_a) == before


def test_a_free_order_waiting_for_approval_holds_nothing_and_its_rejection_returns_nothing(
    api_a, funded_a, free_discount, make_api_client
):
    maker = make_api_client(funded_a)
    approval_policy_set(tenant=funded_a, policy={"keys": [maker.key.key_id]}, actor=None)  # this key always waits
    checker = make_api_client(funded_a, scopes=["approve"])
    before = _books(funded_a)
    waiting = _send(maker, free_discount)
    assert waiting["status"] == "pending_approval" and waiting["total"]["amount"] == "0.00"
    rejected = checker.post(f"/api/v1/orders/{waiting['id']}/reject", {"reason": "Not this month"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "canceled"
    approved = checker.post(f"/api/v1/orders/{_send(maker, free_discount)['id']}/approve")
    assert approved.status_code == 200, approved.content
    assert _books(funded_a) == before


def test_a_bulk_file_mixing_free_and_priced_rows_holds_only_the_priced_ones(api_a, funded_a, free_discount, shop):
    rows = digital_rows(free_discount, 3, domain="free.example") + [
        {**row, "external_id": f"priced-{i}"} for i, row in enumerate(digital_rows(shop.coffee_usd, 2, amount="25"))
    ]
    preview = upload(api_a, csv_bytes(rows)).json()
    assert (preview["valid_rows"], preview["total_cost"]) == (5, {"USD": "50.00"})
    confirmed = api_a.post(f"/api/v1/batches/{preview['id']}/confirm")
    assert confirmed.status_code == 202, confirmed.content
    assert _books(funded_a)[:2] == (Decimal("950.00"), Decimal("50.00"))
    with tenant_context(funded_a):
        assert batch_process(batch_id=preview["id"]) == "done"
        rewards = Reward.objects.filter(batch_row__batch_id=preview["id"])
        assert sorted((r.charge_amount, r.hold_id is None) for r in rewards) == [
            (Decimal("0"), True)] * 3 + [(Decimal("25"), False)] * 2  # fmt: skip
    assert _books(funded_a)[:2] == (Decimal("950.00"), Decimal("50.00"))


def test_a_bulk_file_of_only_free_rows_needs_no_funds_and_holds_nothing(api_b, tenant_b, free_discount):
    preview = upload(api_b, csv_bytes(digital_rows(free_discount, 4, domain="only-free.example"))).json()
    # Charged in the tenant's own currency (beta's is EUR, with no balance at all): nothing.
    assert (preview["valid_rows"], preview["total_cost"], preview["funds_sufficient"]) == (4, {"EUR": "0.00"}, True)
    assert api_b.post(f"/api/v1/batches/{preview['id']}/confirm").status_code == 202
    with tenant_context(tenant_b):
        assert not BatchHold.objects.filter(batch_id=preview["id"]).exists()
        assert batch_process(batch_id=preview["id"]) == "done"
        assert Reward.objects.filter(batch_row__batch_id=preview["id"], hold__isnull=True).count() == 4
    assert api_b.get(f"/api/v1/batches/{preview['id']}").json()["status"] == "completed"
    assert _books(tenant_b) == (0, 0, 0, 0)


def test_only_discounts_can_be_zero_cost_and_a_priced_hold_of_nothing_is_still_refused(funded_a, shop):
    with pytest.raises((ApplicationError, ValidationError)):
        product_create(brand=shop.coffee_usd.brand, name="Free coffee card", currency="USD", countries=["US"],
                       denomination_type="fixed", denomination_values=["10"], zero_cost=True)  # fmt: skip
    with tenant_context(funded_a):
        for amount in (Decimal(0), Decimal("-1")):
            with pytest.raises(ApplicationError) as refused:
                funds_hold(currency="USD", amount=amount, reference="reward:none")
            assert refused.value.code == "validation_error"
        assert ledger_invariant_violations() == []


def test_the_fulfilment_drain_captures_the_priced_rewards_and_nothing_for_the_free_ones(
    api_a, funded_a, free_discount, shop
):
    from fulfillment import drain

    free = [_send(api_a, free_discount)["rewards"][0]["id"] for _ in range(3)]
    priced = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "25.00")).json()["rewards"][0]["id"]
    with tenant_context(funded_a):
        assert drain.fulfil_drain() == 4
        statuses = dict(Reward.objects.values_list("id", "status"))
        assert {str(k): v for k, v in statuses.items()} == dict.fromkeys([*free, priced], "delivered")
        assert LedgerTransaction.objects.filter(kind="capture").count() == 1  # the priced one only, never a 0
    assert _books(funded_a)[:2] == (Decimal("975.00"), Decimal("0"))
