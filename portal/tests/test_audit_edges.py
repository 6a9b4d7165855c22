"""Portal and console actions that a service audits leave exactly one audit row (the service's), not two."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context, tenant_context

from audit.models import AuditEvent
from funds.deposit_requests import deposit_request_create
from funds.models import DepositRequest
from funds.selectors import ledger_invariant_violations
from tenants.models import ApiKey
from testsupport.portal import PASSWORD

pytestmark = pytest.mark.django_db


def actions(tenant) -> list[str]:
    """The audit log of a schema, oldest first, without the sign-ins the fixtures cause."""
    with tenant_context(tenant):
        return list(AuditEvent.objects.exclude(action="auth.login").order_by("id").values_list("action", flat=True))


def test_staff_money_and_key_actions_are_recorded_once_each(signed_in, funded_a, tenant_a):
    client, user = signed_in("admin")
    form = {"form": "deposit_request", "amount": "300.00", "currency": "USD", "reference": "WIRE-77"}
    assert client.post("/funds/", form).status_code == 302
    assert client.post("/funds/", {"form": "threshold", "currency": "USD", "threshold": "50"}).status_code == 302
    assert client.post("/funds/", {"form": "recipients", "emails": "cfo@alpha.test"}).status_code == 302
    data = {"name": "CRM", "scopes": ["read"], "allowed_cidrs": "", "expires_in_days": ""}
    assert client.post("/developers/", data).status_code == 302
    key = ApiKey.objects.get(tenant=tenant_a, name="CRM")
    assert client.post(f"/developers/keys/{key.key_id}/rotate").status_code == 302
    rotated = ApiKey.objects.get(tenant=tenant_a, name="CRM", revoked_at=None)
    assert client.post(f"/developers/keys/{rotated.key_id}/revoke").status_code == 302
    assert actions(tenant_a) == [
        "funds.deposit_request",
        "funds.low_balance_threshold",
        "funds.low_balance_recipients",
        "api_key.create",
        "api_key.rotate",
        "api_key.revoke",
    ]
    with tenant_context(tenant_a):
        assert set(AuditEvent.objects.exclude(action="auth.login").values_list("actor", flat=True)) == {
            f"staff:{user.email}"
        }


def test_operator_approval_and_suspension_are_recorded_once_each(tenant_a):
    from accounts.models import User

    with schema_context("public"):
        operator = User.objects.create_user("op@operator.test", PASSWORD, is_staff=True)
    console = Client(HTTP_HOST="localhost")
    console.force_login(operator)
    with tenant_context(tenant_a):
        deposit = deposit_request_create(currency="USD", amount="40.00", reference="WIRE-5", requested_by="f@a.test")
    url = f"/console/deposits/{tenant_a.schema_name}/{deposit.id}/approve"
    assert console.post(url, {"confirm": "on"}).status_code == 302
    assert console.post(f"/console/tenants/{tenant_a.slug}/status", {"status": "suspended"}).status_code == 302
    assert console.post(f"/console/tenants/{tenant_a.slug}/status", {"status": "active"}).status_code == 302
    assert actions(tenant_a) == ["funds.deposit_request_approved", "tenant.suspend", "tenant.reactivate"]
    with tenant_context(tenant_a):
        assert DepositRequest.objects.get().status == "credited"
        assert set(AuditEvent.objects.values_list("actor", flat=True)) == {"operator:op@operator.test"}
        assert ledger_invariant_violations() == []
