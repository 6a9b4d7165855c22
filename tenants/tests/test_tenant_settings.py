"""GET|PATCH /api/v1/tenant: the tenant's name, default language and time zone — checked, scoped, isolated."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tenants.models import Tenant


def _rows(slug: str) -> dict[bool, tuple[str, str, str]]:
    connection.set_schema_to_public()
    return {row.is_sandbox: (row.name, row.default_locale, row.timezone) for row in Tenant.objects.filter(slug=slug)}


def test_get_shows_the_settings_and_patch_changes_the_company_and_its_sandbox(tenant_a, api_a, make_api_client):
    assert api_a.get("/api/v1/tenant").json() == {"name": tenant_a.name, "default_locale": None, "timezone": "UTC",
                                                  "approval_policy": {}, "require_two_factor": False}  # fmt: skip

    response = api_a.patch("/api/v1/tenant", {"default_locale": "ms-MY", "timezone": "Asia/Kuala_Lumpur"})

    assert response.status_code == 200, response.content
    assert response.json() == {"name": tenant_a.name, "default_locale": "ms", "timezone": "Asia/Kuala_Lumpur",
                               "approval_policy": {}, "require_two_factor": False}  # fmt: skip
    assert _rows("alpha") == {
        False: (tenant_a.name, "ms", "Asia/Kuala_Lumpur"),
        True: (tenant_a.sandbox.name, "ms", "Asia/Kuala_Lumpur"),
    }
    with tenant_context(tenant_a):
        [event] = AuditEvent.objects.filter(action="tenant.settings_update")
        assert event.data["changed"] == ["default_locale", "timezone"]
    # read keys read; the sandbox follows the company
    reader = make_api_client(tenant_a, scopes=["read"])
    assert reader.get("/api/v1/tenant").json()["timezone"] == "Asia/Kuala_Lumpur"
    # clearing the language: null or ""
    assert api_a.patch("/api/v1/tenant", {"default_locale": None}).json()["default_locale"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"default_locale": "fr"}, "default_locale"),
        ({"name": "   "}, "name"),
        ({"name": "Acme\u0000"}, "name"),
        ({"require_two_factor_typo": True}, "require_two_factor_typo"),
        ({"timezone": "Asia/Kuala_Lumpur", "default_locale": "xx"}, "default_locale"),  # all or nothing
    ],
)
def test_bad_settings_are_refused_per_field_and_change_nothing(tenant_a, api_a, body, field):
    before = _rows("alpha")

    response = api_a.patch("/api/v1/tenant", body)

    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert list(response.json()["errors"]) == [field]
    assert _rows("alpha") == before


def test_a_read_key_cannot_change_settings(tenant_a, make_api_client):
    reader = make_api_client(tenant_a, scopes=["read"])

    response = reader.patch("/api/v1/tenant", {"timezone": "Asia/Kuala_Lumpur"})

    assert response.status_code == 403
    assert _rows("alpha")[False][2] == "UTC"


def test_each_key_changes_only_its_own_tenant_and_the_sandbox_never_the_company(
    tenant_a, tenant_b, api_a, api_b, make_api_client
):
    assert api_b.patch("/api/v1/tenant", {"name": "Beta Berhad", "timezone": "Europe/London"}).status_code == 200
    sandbox_a = make_api_client(tenant_a.sandbox)
    assert sandbox_a.patch("/api/v1/tenant", {"timezone": "America/New_York"}).status_code == 200

    assert _rows("beta")[False] == ("Beta Berhad", "", "Europe/London")
    assert _rows("alpha") == {
        False: (tenant_a.name, "", "UTC"),
        True: (tenant_a.sandbox.name, "", "America/New_York"),
    }
    assert api_a.get("/api/v1/tenant").json()["timezone"] == "UTC"
    assert sandbox_a.get("/api/v1/tenant").json()["timezone"] == "America/New_York"


def test_the_approval_policy_and_two_factor_rule_need_the_approve_scope_and_are_checked(
    tenant_a, api_a, make_api_client
):
    body = {"approval_policy": {"thresholds": {"USD": "1000"}, "expires_after_days": 3}, "require_two_factor": True}
    refused = api_a.patch("/api/v1/tenant", body)  # a write key cannot lift the rule its own orders are under
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    admin_key = make_api_client(tenant_a, scopes=["read", "write", "approve"])
    bad = admin_key.patch("/api/v1/tenant", {"approval_policy": {"thresholds": {"USD": "-5"}}})
    assert bad.status_code == 422 and "approval_policy" in bad.json()["errors"]
    response = admin_key.patch("/api/v1/tenant", body)
    assert response.status_code == 200, response.content
    shown = response.json()
    assert shown["approval_policy"] == {"thresholds": {"USD": "1000.00"}, "expires_after_days": 3}
    assert shown["require_two_factor"] is True
    assert api_a.get("/api/v1/tenant").json()["approval_policy"] == shown["approval_policy"]
    connection.set_schema_to_public()
    assert Tenant.objects.get(live=tenant_a).approval_policy == shown["approval_policy"]  # the sandbox follows
    assert admin_key.patch("/api/v1/tenant", {"approval_policy": {}}).json()["approval_policy"] == {}
