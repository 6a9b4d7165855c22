"""Services that change money, credentials or people record their own audit row, whoever calls them: the CLI
leaves one row as the portal and the API do, never two, and a change rolled back leaves none."""

from __future__ import annotations

import ast
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django_tenants.utils import tenant_context

from audit.actors import Actor
from audit.models import AuditEvent
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from tenants.models import ApiKey, Tenant

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def rows(tenant, **filters) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(**filters))


def test_cli_deposit_leaves_one_audit_row_naming_the_os_user(tenant_a):
    with tenant_context(tenant_a):
        before = balance_get(currency="USD")
    run("funds_deposit", "alpha", "125.50", "usd", "--description", "Wire 7")
    [event] = rows(tenant_a)
    assert (event.action, event.actor, event.object_type) == ("funds.deposit", Actor.cli().label, "ledger_transaction")
    assert event.actor.startswith("cli:") and event.data == {"currency": "USD", "amount": "125.50", "reference": ""}
    with tenant_context(tenant_a):
        assert balance_get(currency="USD").available == (before.available if before else 0) + Decimal("125.50")
        assert ledger_invariant_violations() == []
    assert rows(tenant_a.sandbox) == []


def test_cli_api_key_and_partner_key_each_leave_one_row_in_the_keys_schema(tenant_a):
    raw = run("api_key_create", "alpha", "--sandbox", "--scopes", "read").splitlines()[-1]
    key = ApiKey.objects.get(tenant=tenant_a.sandbox)
    [event] = rows(tenant_a.sandbox)
    assert (event.action, event.object_id, event.actor) == ("api_key.create", key.key_id, Actor.cli().label)
    assert event.data["scopes"] == ["read"] and raw not in str(event.data) and key.key_hash not in str(event.data)
    assert rows(tenant_a) == []

    run("partner_key_create", "alpha", "--name", "ShipCo")
    [event] = rows(tenant_a)
    assert event.action == "partner_key.create" and event.data["name"] == "ShipCo"


def test_cli_staff_create_leaves_one_row_and_a_refusal_none(tenant_a):
    run("staff_create", "alpha", "New.Person@alpha.test", "--role", "finance", "--password", "long-enough-pw")
    [event] = rows(tenant_a)
    assert (event.action, event.actor) == ("team.create", Actor.cli().label)
    assert event.data == {"email": "new.person@alpha.test", "role": "finance"}
    with pytest.raises(CommandError):
        run("staff_create", "alpha", "new.person@alpha.test", "--role", "viewer")
    assert len(rows(tenant_a)) == 1


def test_cli_tenant_create_is_audited_in_the_new_tenant(db):
    run("tenant_create", "delta-co", "--name", "Delta Co")
    live = Tenant.objects.get(slug="delta-co", is_sandbox=False)
    [event] = rows(live)
    assert (event.action, event.object_id, event.actor) == ("tenant.create", "delta-co", Actor.cli().label)


def test_a_rolled_back_change_leaves_no_row(tenant_a):
    with tenant_context(tenant_a):
        with pytest.raises(RuntimeError), transaction.atomic():
            funds_deposit(currency="USD", amount="10.00", actor=Actor.cli())
            raise RuntimeError("the caller's transaction fails after the deposit")
        assert not AuditEvent.objects.exists()
        assert ledger_invariant_violations() == []


def test_an_api_write_whose_service_audits_gets_its_row_not_a_second_generic_one(api_a, tenant_a):
    created = api_a.post("/api/v1/webhook-endpoints", {"url": "https://hooks.example.com/rp"})
    assert created.status_code == 201, created.content
    endpoint_id = created.json()["id"]
    assert api_a.post(f"/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret").status_code == 200
    # A write whose service records nothing (a test send) keeps the generic row of the route.
    assert api_a.post(f"/api/v1/webhook-endpoints/{endpoint_id}/test").status_code == 202
    assert api_a.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 204
    events = rows(tenant_a, actor=f"api-key:{api_a.key.key_id}")
    assert sorted(e.action for e in events) == [
        "POST /api/v1/webhook-endpoints/<str:endpoint_id>/test",
        "webhook_endpoint.create",
        "webhook_endpoint.delete",
        "webhook_endpoint.rotate_secret",
    ]
    assert all(e.ip == "127.0.0.1" for e in events)
    assert all(e.object_id == endpoint_id for e in events if e.action.startswith("webhook_endpoint."))
    secret = created.json()["secret"]
    assert secret not in str([e.data for e in events])


# Every service that records its own row, and the files allowed to call it without naming an actor (set-up
# that nobody did: fixtures, benchmarks, fault scripts).
AUDITED_SERVICES = {
    "funds_deposit", "deposit_request_create", "deposit_request_approve", "deposit_request_reject",
    "funds_set_low_balance_threshold", "low_balance_recipients_set",
    "api_key_create", "api_key_revoke", "api_key_rotate", "partner_key_create", "tenant_create", "tenant_set_status",
    "webhook_endpoint_create", "webhook_endpoint_update", "webhook_endpoint_delete", "webhook_secret_rotate",
    "staff_create",
}  # fmt: skip
NOT_APPLICATION_CODE = (
    "tests",
    "testsupport",
    "bench",
    "resilience",
    "scale",
    "scripts",
    ".venv",
    "node_modules",
    "var",
)


def test_every_caller_in_the_application_names_an_actor():
    missing = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in NOT_APPLICATION_CODE or "tests" in relative.parts or relative.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in AUDITED_SERVICES and not any(k.arg == "actor" for k in node.keywords):
                missing.append(f"{relative}:{node.lineno} {name}()")
    assert missing == []
