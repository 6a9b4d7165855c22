"""Tenant isolation: another tenant's objects are 404 and never listed; sandbox and live never meet."""

from django.test import Client
from django_tenants.utils import tenant_context

from funds.models import LedgerTransaction
from funds.selectors import balance_get
from funds.services import funds_deposit


def _deposit(tenant, amount="100.00", currency="USD"):
    with tenant_context(tenant):
        funds_deposit(currency=currency, amount=amount)
        return LedgerTransaction.objects.get(kind="deposit", amount=amount)


def test_other_tenants_objects_are_404_and_unlisted(tenant_a, tenant_b, api_a, api_b):
    txn_a = _deposit(tenant_a, "111.00")
    txn_b = _deposit(tenant_b, "222.00")

    assert api_a.get(f"/api/v1/transactions/{txn_a.id}").status_code == 200
    foreign = api_a.get(f"/api/v1/transactions/{txn_b.id}")
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "not_found"
    assert api_b.get(f"/api/v1/transactions/{txn_a.id}").status_code == 404

    listed_a = {row["id"] for row in api_a.get("/api/v1/transactions").json()["results"]}
    assert listed_a == {str(txn_a.id)}
    balances_b = api_b.get("/api/v1/balances").json()["results"]
    assert [(b["currency"], b["available"]) for b in balances_b] == [("USD", "222.00")]


def test_sandbox_key_never_touches_live_data(tenant_a, make_api_client):
    live_txn = _deposit(tenant_a, "500.00")
    sandbox_txn = _deposit(tenant_a.sandbox, "7.00")
    live = make_api_client(tenant_a)
    test = make_api_client(tenant_a.sandbox)
    assert test.raw_key.startswith("rp_test_") and live.raw_key.startswith("rp_live_")

    assert test.get("/api/v1/balances").json()["results"][0]["available"] == "7.00"
    assert live.get("/api/v1/balances").json()["results"][0]["available"] == "500.00"
    assert test.get(f"/api/v1/transactions/{live_txn.id}").status_code == 404
    assert live.get(f"/api/v1/transactions/{sandbox_txn.id}").status_code == 404
    with tenant_context(tenant_a):
        assert balance_get(currency="USD").available == 500


def test_a_tenant_header_is_ignored(tenant_a, tenant_b, api_a):
    _deposit(tenant_b, "999.00")
    response = api_a.get("/api/v1/balances", HTTP_X_TENANT="beta", HTTP_HOST="beta.localhost")
    assert response.json()["results"] == []


def test_portal_host_routes_to_its_tenant_and_unknown_hosts_are_404(tenant_a):
    assert Client().get("/healthz", HTTP_HOST="alpha.localhost").status_code == 200
    assert Client().get("/", HTTP_HOST="nobody.localhost").status_code == 404
