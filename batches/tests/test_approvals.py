"""Bulk batches under a maker–checker policy, over the API: a large batch waits with its cost held."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from batches.models import BatchRow
from batches.tasks import batch_approvals_expire_task
from funds.selectors import ledger_invariant_violations
from tenants.policies import approval_policy_set
from testsupport.batches import csv_bytes, digital_rows, upload
from testsupport.funds import balances
from testsupport.problems import assert_problem
from webhooks.models import Event


def _waiting_batch(api, shop, domain: str) -> dict:
    """A 30-row, 300.00 USD batch confirmed by `api`: over the 250.00 threshold."""
    preview = upload(api, csv_bytes(digital_rows(shop.coffee_usd, 30, domain=domain))).json()
    response = api.post(f"/api/v1/batches/{preview['id']}/confirm")
    assert response.status_code == 202, response.content
    return response.json()


def _money(tenant):
    with tenant_context(tenant):
        _, held, available = balances("USD")
        return held, available, ledger_invariant_violations()


def test_a_batch_over_the_threshold_waits_and_a_second_key_approves_it(api_a, funded_a, make_api_client, shop):
    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "250.00"}}, actor=None)
    creator_approver = make_api_client(funded_a, scopes=["read", "write", "approve"])
    checker = make_api_client(funded_a, scopes=["approve"])
    batch = _waiting_batch(creator_approver, shop, "a.example")
    assert batch["status"] == "pending_approval" and batch["approval"]["status"] == "pending"
    assert _money(funded_a) == (Decimal(300), Decimal(700), [])
    assert_problem(creator_approver.post(f"/api/v1/batches/{batch['id']}/approve"), 403, "four_eyes_required")
    assert_problem(api_a.post(f"/api/v1/batches/{batch['id']}/approve"), 403, "forbidden")

    approved = checker.post(f"/api/v1/batches/{batch['id']}/approve")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "confirmed" and approved.json()["approval"]["status"] == "approved"
    with tenant_context(funded_a):
        types = list(Event.objects.filter(type__startswith="batch.").values_list("type", flat=True))
        assert sorted(types) == ["batch.approval_required", "batch.approved"]


def test_rejected_and_expired_batches_release_their_funds_and_send_nothing(api_a, funded_a, make_api_client, shop):
    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "250.00"}, "expires_after_days": 2}, actor=None)
    checker = make_api_client(funded_a, scopes=["approve"])
    rejected = _waiting_batch(api_a, shop, "b.example")
    expiring = _waiting_batch(api_a, shop, "c.example")
    assert _money(funded_a) == (Decimal(600), Decimal(400), [])
    response = checker.post(f"/api/v1/batches/{rejected['id']}/reject", {"reason": "Wrong file"})
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert response.json()["approval"]["reason"] == "Wrong file"
    with freeze_time(timezone.now() + timedelta(days=2, minutes=1)):
        batch_approvals_expire_task()
    body = api_a.get(f"/api/v1/batches/{expiring['id']}").json()
    assert body["status"] == "canceled" and body["approval"]["status"] == "expired"
    assert _money(funded_a) == (Decimal(0), Decimal(1000), [])
    with tenant_context(funded_a):
        assert set(BatchRow.objects.values_list("status", flat=True)) == {"canceled"}
        assert not BatchRow.objects.filter(reward__isnull=False).exists()
