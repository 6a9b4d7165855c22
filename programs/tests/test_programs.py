"""Programs: creation rules, the order-time selector, the read API and tenant/sandbox isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from catalog.services import brand_upsert, product_create
from core.errors import ApplicationError
from programs.models import Program
from programs.selectors import program_budget_period_start, program_get
from programs.services import program_create, program_set_active


@pytest.fixture
def product(db):
    brand = brand_upsert(slug="fern-hollow", name="Fern Hollow")
    return product_create(brand=brand, name="Fern Hollow eGift", currency="USD", countries=["US"],
                          denomination_type="fixed", denomination_values=["25"])  # fmt: skip


def refusal(**kwargs) -> dict:
    with pytest.raises(ApplicationError) as info:
        program_create(**kwargs)
    assert info.value.code == "validation_error" and info.value.status == 422
    return info.value.errors


def test_program_create_full(tenant_a, product):
    with tenant_context(tenant_a):
        program = program_create(
            slug="Spot-Awards", name=" Spot awards ", budget_amount="5000", budget_currency="usd",
            budget_period="monthly", allowed_product_ids=[str(product.id)], default_message="Thanks!",
            sender_name="People Team", branding={"logo_url": "https://example.com/l.png", "primary_color": "#1a73e8"},
        )  # fmt: skip
        program.refresh_from_db()
    assert (program.slug, program.name) == ("spot-awards", "Spot awards")
    assert (program.budget_amount, program.budget_currency, program.budget_period) == (
        Decimal("5000"),
        "USD",
        "monthly",
    )
    assert program.allowed_product_ids == [product.id]
    assert program.branding == {"logo_url": "https://example.com/l.png", "primary_color": "#1a73e8"}


def test_program_create_refusals(tenant_a, product):
    with tenant_context(tenant_a):
        program_create(slug="taken", name="Taken")
        assert "slug" in refusal(slug="taken", name="Again")
        assert "slug" in refusal(slug="Not a slug!", name="X")
        assert "name" in refusal(slug="blank-name", name="  ")
        assert "budget_currency" in refusal(slug="b1", name="B", budget_amount="100", budget_period="yearly")
        assert "budget_amount" in refusal(slug="b2", name="B", budget_amount="100.001", budget_currency="USD",
                                          budget_period="yearly")  # fmt: skip
        errors = refusal(slug="b6", name="B", budget_amount="100", budget_currency="USD")  # no period
        assert errors["budget_period"] == ["A budget amount needs a period: monthly, quarterly or yearly."]
        assert "budget_amount" in refusal(slug="b3", name="B", budget_period="monthly")
        assert "budget_amount" in refusal(slug="b4", name="B", budget_currency="USD")
        assert "budget_period" in refusal(slug="b5", name="B", budget_period="weekly")
        errors = refusal(slug="p1", name="P", allowed_product_ids=[uuid.uuid4(), "junk", product.id])
        assert "allowed_product_ids" in errors and str(product.id) not in errors["allowed_product_ids"][0]
        errors = refusal(slug="p2", name="P", branding={"primary_color": "blue", "font": "x", "logo_url": "ftp://x"})
        assert len(errors["branding"]) == 3
        assert list(Program.objects.values_list("slug", flat=True)) == ["taken"]


def test_program_get_refuses_unknown_and_inactive(tenant_a):
    with tenant_context(tenant_a):
        program = program_create(slug="spot-awards", name="Spot awards")
        assert program_get(slug="Spot-Awards") == program
        program_set_active(program=program, is_active=False)
        for slug, message in (("spot-awards", "The program 'spot-awards' is inactive."),
                              ("nope", "Unknown program 'nope'.")):  # fmt: skip
            with pytest.raises(ApplicationError) as info:
                program_get(slug=slug)
            assert (info.value.code, info.value.status) == ("validation_error", 422)
            assert info.value.errors == {"program": [message]}


def test_programs_are_per_schema(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        program_create(slug="spot-awards", name="Spot awards")
    for other in (tenant_b, tenant_a.sandbox):
        with tenant_context(other), pytest.raises(ApplicationError):
            program_get(slug="spot-awards")
    with tenant_context(tenant_a.sandbox):
        program_create(slug="spot-awards", name="Spot awards (sandbox)")  # the same slug is free in the twin


@pytest.mark.parametrize(
    ("period", "expected"),
    [("monthly", datetime(2025, 5, 1, tzinfo=UTC)), ("quarterly", datetime(2025, 4, 1, tzinfo=UTC)),
     ("yearly", datetime(2025, 1, 1, tzinfo=UTC)), ("none", None)],
)  # fmt: skip
def test_budget_period_start(period, expected):
    program = Program(slug="p", name="P", budget_period=period)
    assert program_budget_period_start(program=program, at=datetime(2025, 5, 17, 13, 45, tzinfo=UTC)) == expected


# --- API ---------------------------------------------------------------------------------------------------


def test_program_api_list_and_detail(tenant_a, api_a, product, django_assert_max_num_queries):
    with tenant_context(tenant_a):
        program_create(slug="spot-awards", name="Spot awards", budget_amount="5000", budget_currency="USD",
                       budget_period="quarterly", allowed_product_ids=[product.id], sender_name="People Team",
                       branding={"primary_color": "#112233"})  # fmt: skip
        for number in range(5):
            program_create(slug=f"team-{number}", name=f"Team {number}", is_active=number % 2 == 0)
    seen = []
    url, params = "/api/v1/programs", {"limit": 4}
    while url:
        with django_assert_max_num_queries(7):
            response = api_a.get(url, params)
        assert response.status_code == 200, response.content
        seen += [program["slug"] for program in response.json()["results"]]
        url, params = response.json()["next"], None
    assert sorted(seen) == ["spot-awards", "team-0", "team-1", "team-2", "team-3", "team-4"]
    inactive = api_a.get("/api/v1/programs", {"is_active": "false"}).json()["results"]
    assert sorted(program["slug"] for program in inactive) == ["team-1", "team-3"]
    response = api_a.get("/api/v1/programs/spot-awards")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("created_at")
    assert body == {
        "slug": "spot-awards",
        "name": "Spot awards",
        "budget": {"amount": "5000.00", "currency": "USD", "period": "quarterly"},
        "allowed_product_ids": [str(product.id)],
        "default_message": "",
        "sender_name": "People Team",
        "branding": {"primary_color": "#112233"},
        "default_locale": "",
        "points": None,
        "claim_days": None,
        "on_expiry": "release",
        "reminders": {},
        "verification": "off",
        "track_email_opens": True,
        "is_active": True,
    }
    unlimited = api_a.get("/api/v1/programs/team-1").json()
    assert unlimited["budget"] == {"amount": None, "currency": None, "period": "none"}
    assert unlimited["is_active"] is False


def test_program_of_another_tenant_is_404(tenant_a, tenant_b, api_a, api_b, make_api_client):
    with tenant_context(tenant_b):
        program_create(slug="beta-only", name="Beta only")
    with tenant_context(tenant_a):
        program_create(slug="alpha-live", name="Alpha live")
    response = api_a.get("/api/v1/programs/beta-only")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json") and response.json()["code"] == "not_found"
    assert [p["slug"] for p in api_a.get("/api/v1/programs").json()["results"]] == ["alpha-live"]
    assert api_b.get("/api/v1/programs/beta-only").status_code == 200
    sandbox = make_api_client(tenant_a.sandbox)
    assert sandbox.get("/api/v1/programs").json()["results"] == []
    assert sandbox.get("/api/v1/programs/alpha-live").status_code == 404


def test_program_api_bad_filter(api_a):
    response = api_a.get("/api/v1/programs", {"is_active": "perhaps"})
    assert response.status_code == 422 and "is_active" in response.json()["errors"]


# --- command -------------------------------------------------------------------------------------------------


def test_program_create_command(tenant_a, product, capsys):
    call_command("program_create", "alpha", "welcome", "--name", "Welcome gifts", "--sandbox", "--budget", "250",
                 "--currency", "USD", "--period", "yearly", "--products", f"{product.id}", "--primary-color",
                 "#abcdef")  # fmt: skip
    assert capsys.readouterr().out.strip().splitlines()[-1] == "welcome"
    with tenant_context(tenant_a.sandbox):
        program = program_get(slug="welcome")
        assert program.budget_amount == Decimal("250") and program.allowed_product_ids == [product.id]
    with tenant_context(tenant_a):
        assert not Program.objects.filter(slug="welcome").exists()
    with pytest.raises(CommandError) as info:
        call_command("program_create", "alpha", "welcome", "--name", "Again", "--sandbox")
    assert "already exists" in str(info.value) and info.value.returncode == 2


def test_dev_bootstrap_loads_the_demo_catalogue_and_spot_awards(db, capsys):
    from tenants.models import Tenant

    call_command("dev_bootstrap")
    call_command("dev_bootstrap")  # idempotent
    assert "Demo catalogue:" in capsys.readouterr().out
    live = Tenant.objects.select_related("sandbox").get(slug="demo", is_sandbox=False)
    for tenant in (live, live.sandbox):
        with tenant_context(tenant):
            assert program_get(slug="spot-awards").name == "Spot awards"


def test_dev_bootstrap_revokes_the_keys_it_printed_before(db, capsys):
    """Each `make dev` prints fresh keys (hashes only are kept); the earlier ones stop working."""
    import re

    from django.db import connection

    from tenants.services import CredentialError, api_key_authenticate

    call_command("dev_bootstrap")
    first = re.findall(r"(rp_(?:live|test)_[a-z0-9]{12}_[A-Za-z0-9_-]{20,})", capsys.readouterr().out)
    call_command("dev_bootstrap")
    second = re.findall(r"(rp_(?:live|test)_[a-z0-9]{12}_[A-Za-z0-9_-]{20,})", capsys.readouterr().out)
    assert len(set(first)) == 2 and len(set(second)) == 2 and not set(first) & set(second)
    connection.set_schema_to_public()
    for raw in second:
        assert api_key_authenticate(raw_key=raw, client_ip="127.0.0.1").name == "make dev"
    for raw in first:
        with pytest.raises(CredentialError, match="revoked"):
            api_key_authenticate(raw_key=raw, client_ip="127.0.0.1")
