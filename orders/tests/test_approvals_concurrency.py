"""Approval decisions racing each other over real HTTP and real PostgreSQL locks: each order is decided once."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from funds.selectors import ledger_invariant_violations
from funds.services import funds_deposit
from orders.approvals import order_approvals_expire
from orders.models import Order
from tenants.policies import approval_policy_set
from tenants.services import api_key_create
from testsupport.api import http_json
from testsupport.catalog import make_shop
from testsupport.concurrency import together
from testsupport.funds import balances
from testsupport.orders import digital_order

ROUNDS = 4


def _setup(tenant):
    connection.set_schema_to_public()
    keys = [api_key_create(tenant=tenant, scopes=scopes)[1] for scopes in (["read", "write"], ["approve"], ["approve"])]
    shop = make_shop()
    approval_policy_set(tenant=tenant, policy={"thresholds": {"USD": "50.00"}}, actor=None)
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount="1000.00")
    return keys, shop


def _place(url, key, shop) -> str:
    status, body, _ = http_json("POST", f"{url}/api/v1/orders", key=key, body=digital_order(shop.coffee_usd, "50.00"))
    assert status == 202, body
    return body["id"]


def _ledger(tenant):
    """What the tenant can still spend, and the invariants. An approved order's money is held and then captured
    by whichever worker fulfils it first (the suite's Celery worker may already have), so the held figure is not
    stable here; the available balance is either way."""
    with tenant_context(tenant):
        _, _, available = balances("USD")
        return available, ledger_invariant_violations()


def test_two_approvers_at_once_approve_once(committed_tenant, live_http):
    (creator, first, second), shop = _setup(committed_tenant)
    order_id = _place(live_http, creator, shop)
    url = f"{live_http}/api/v1/orders/{order_id}/approve"
    results = together(lambda: http_json("POST", url, key=first), lambda: http_json("POST", url, key=second))
    assert [status for status, _, _ in results] == [200, 200]
    assert {body["approval"]["decided_by"] for _, body, _ in results} == {results[0][1]["approval"]["decided_by"]}
    with tenant_context(committed_tenant):
        assert AuditEvent.objects.filter(action="order.approve", object_id=order_id).count() == 1
        assert Order.objects.get(pk=order_id).approval_status == "approved"
    assert _ledger(committed_tenant) == (Decimal(950), [])


def test_approve_against_reject_decides_once_and_the_money_follows(committed_tenant, live_http):
    (creator, first, second), shop = _setup(committed_tenant)
    for _ in range(ROUNDS):
        order_id = _place(live_http, creator, shop)
        base = f"{live_http}/api/v1/orders/{order_id}"
        approve, reject = together(
            lambda: http_json("POST", f"{base}/approve", key=first),
            lambda: http_json("POST", f"{base}/reject", key=second),
        )
        assert sorted([approve[0], reject[0]]) == [200, 409]
        loser = approve if approve[0] == 409 else reject
        assert loser[1]["code"] == "approval_decided"
    with tenant_context(committed_tenant):
        approved = Order.objects.filter(approval_status="approved").count()
        assert approved + Order.objects.filter(approval_status="rejected").count() == ROUNDS
    assert _ledger(committed_tenant) == (Decimal(1000 - 50 * approved), [])


def test_approve_against_expiry_decides_once(committed_tenant, live_http):
    (creator, first, _), shop = _setup(committed_tenant)
    later = timezone.now() + timedelta(days=30)

    def expire():
        with tenant_context(committed_tenant):
            return order_approvals_expire(now=later)

    for _ in range(ROUNDS):
        order_id = _place(live_http, creator, shop)
        approve, expired = together(
            lambda: http_json("POST", f"{live_http}/api/v1/orders/{order_id}/approve", key=first),
            expire,
        )
        assert (approve[0] == 200) != (expired == [order_id]), (approve, expired)
    with tenant_context(committed_tenant):
        approved = Order.objects.filter(approval_status="approved").count()
        assert approved + Order.objects.filter(approval_status="expired").count() == ROUNDS
    assert _ledger(committed_tenant) == (Decimal(1000 - 50 * approved), [])


def test_twenty_approvers_and_rejecters_at_once_decide_once(committed_tenant, live_http):
    """Ten approve and ten reject calls on one order at the same instant (REVIEWS.md: 20 at once): one decision
    wins; the calls that agree with it answer 200 with it, the others 409 `approval_decided`; one audit row."""
    (creator, first, second), shop = _setup(committed_tenant)
    order_id = _place(live_http, creator, shop)
    base = f"{live_http}/api/v1/orders/{order_id}"
    calls = [
        (lambda key=key, action=action: http_json("POST", f"{base}/{action}", key=key))
        for action in ("approve", "reject")
        for key in [first, second] * 5
    ]
    results = together(*calls)
    assert {status for status, _, _ in results} <= {200, 409}
    decided = {body["approval"]["status"] for status, body, _ in results if status == 200}
    assert len(decided) == 1, decided
    [decision] = decided
    losers = [body for status, body, _ in results if status == 409]
    assert len(losers) == 10 and {body["code"] for body in losers} == {"approval_decided"}
    with tenant_context(committed_tenant):
        order = Order.objects.get(pk=order_id)
        assert order.approval_status == decision
        actions = AuditEvent.objects.filter(object_id=order_id, action__in=["order.approve", "order.reject"])
        assert actions.count() == 1
    assert _ledger(committed_tenant) == (Decimal(950 if decision == "approved" else 1000), [])


def test_twenty_decisions_at_once_on_a_batch_decide_once(committed_tenant, live_http):
    from testsupport.api import ApiClient
    from testsupport.batches import csv_bytes, digital_rows, upload

    (creator, first, second), shop = _setup(committed_tenant)
    connection.set_schema_to_public()
    uploader = ApiClient(creator, None)  # in-process: a multipart upload; the decisions go over real HTTP
    preview = upload(uploader, csv_bytes(digital_rows(shop.coffee_usd, 6, amount="10")))
    assert preview.status_code in (200, 201), preview.content
    status, batch, _ = http_json("POST", f"{live_http}/api/v1/batches/{preview.json()['id']}/confirm", key=creator)
    assert (status, batch["status"]) == (202, "pending_approval"), batch
    base = f"{live_http}/api/v1/batches/{batch['id']}"
    calls = [
        (lambda key=key, action=action: http_json("POST", f"{base}/{action}", key=key))
        for action in ("approve", "reject")
        for key in [first, second] * 5
    ]
    results = together(*calls)
    assert {status for status, _, _ in results} <= {200, 409}
    decided = {body["approval"]["status"] for status, body, _ in results if status == 200}
    assert len(decided) == 1, decided
    assert sum(1 for status, _, _ in results if status == 409) == 10
    with tenant_context(committed_tenant):
        actions = AuditEvent.objects.filter(object_id=batch["id"], action__in=["batch.approve", "batch.reject"])
        assert actions.count() == 1
    [decision] = decided
    assert _ledger(committed_tenant) == (Decimal(940 if decision == "approved" else 1000), [])
