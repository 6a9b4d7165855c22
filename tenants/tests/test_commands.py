"""Operator commands: the contract in docs/operations.md (what they print), and bad input creating nothing."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from accounts.models import User
from tenants.models import ApiKey, Domain, Tenant


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_tenant_create_makes_live_sandbox_and_domain(db):
    out, _ = run("tenant_create", "gamma-co", "--name", "Gamma Co", "--currency", "gbp")
    assert out == "gamma-co"
    live = Tenant.objects.get(slug="gamma-co", is_sandbox=False)
    assert live.default_currency == "GBP" and live.schema_name == "gamma_co"
    assert live.sandbox.schema_name == "gamma_co_sandbox" and live.sandbox.default_currency == "GBP"
    # the twin's schema waits for its first use (tenants/tests/test_lazy_twins.py)
    assert schema_exists("gamma_co") and not schema_exists("gamma_co_sandbox")
    assert Domain.objects.get(tenant=live).domain == "gamma-co.localhost"
    # the clone is fully migrated: tenant tables exist and are usable
    with tenant_context(live):
        assert User.objects.count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ("Bad_Slug", "--name", "X"),
        ("ok-slug", "--name", "   "),
        ("ok-slug", "--name", "X", "--currency", "DOLLARS"),
        ("alpha", "--name", "Duplicate"),
        ("public", "--name", "Reserved"),
        ("x-sandbox", "--name", "Twin clash"),
    ],
)
def test_tenant_create_refuses_bad_input_and_creates_nothing(db, args):
    before = set(Tenant.objects.values_list("schema_name", flat=True))
    with pytest.raises(CommandError) as excinfo:
        run("tenant_create", *args)
    assert str(excinfo.value)
    assert set(Tenant.objects.values_list("schema_name", flat=True)) == before
    assert not schema_exists("ok_slug")


def test_api_key_create_prints_the_key_on_the_last_line(tenant_a):
    out, _ = run("api_key_create", "alpha", "--sandbox", "--name", "ci", "--scopes", "read")
    key = out.splitlines()[-1]
    assert key.startswith("rp_test_")
    stored = ApiKey.objects.get(key_id=key.split("_")[2])
    assert stored.tenant == tenant_a.sandbox and stored.scopes == ["read"] and stored.name == "ci"


def test_api_key_create_refusals(db):
    with pytest.raises(CommandError, match="No tenant"):
        run("api_key_create", "nobody")
    with pytest.raises(CommandError, match="Scopes"):
        run("api_key_create", "alpha", "--scopes", "read,admin")
    with pytest.raises(CommandError, match="CIDR"):
        run("api_key_create", "alpha", "--allow-cidr", "not-a-net")
    assert not ApiKey.objects.exists()


def test_staff_create(tenant_a):
    out, err = run("staff_create", "alpha", "Boss@Alpha.example", "--role", "admin")
    assert out == "boss@alpha.example"
    assert "generated password" in err
    with tenant_context(tenant_a):
        assert User.objects.get(email="boss@alpha.example").role == "admin"
    connection.set_schema_to_public()
    assert not User.objects.filter(email="boss@alpha.example").exists()  # staff live in the tenant schema
    with pytest.raises(CommandError, match="already"):
        run("staff_create", "alpha", "boss@alpha.example", "--role", "viewer")
    with pytest.raises(CommandError, match="valid email"):
        run("staff_create", "alpha", "not-an-email", "--role", "viewer")


def test_funds_deposit_prints_available_balance(tenant_a):
    assert run("funds_deposit", "alpha", "250.00", "usd")[0] == "250.00"
    assert run("funds_deposit", "alpha", "0.50", "USD")[0] == "250.50"
    assert run("funds_deposit", "alpha", "3", "USD", "--sandbox")[0] == "3.00"
    for bad in (("alpha", "-5", "USD"), ("alpha", "1.001", "USD"), ("alpha", "abc", "USD"), ("alpha", "5", "US")):
        with pytest.raises(CommandError):
            run("funds_deposit", *bad)
    assert run("funds_deposit", "alpha", "0.01", "USD")[0] == "250.51"
