"""The operator console (/console/): public host only, operators only; tenants, deposits, catalogue, health."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from testsupport.portal import PASSWORD, portal_client

pytestmark = pytest.mark.django_db


def make_operator(email: str = "op@operator.test", *, is_staff: bool = True):
    from accounts.models import User

    return User.objects.create_user(email, PASSWORD, is_staff=is_staff)


@pytest.fixture
def operator_client(db) -> Client:
    operator = make_operator()
    client = Client(HTTP_HOST="localhost")
    client.force_login(operator)
    return client


def test_anonymous_is_sent_to_sign_in_and_non_staff_refused(db):
    client = Client(HTTP_HOST="localhost")
    response = client.get("/console/tenants/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
    make_operator("plain@operator.test", is_staff=False)
    response = client.post("/console/login/", {"email": "plain@operator.test", "password": PASSWORD})
    assert response.status_code == 200
    assert b"match an operator account" in response.content
    client.force_login(make_operator("plain2@operator.test", is_staff=False))
    assert client.get("/console/tenants/").status_code == 403
    assert client.get("/console/health/").status_code == 403


def test_operator_signs_in_and_failures_are_throttled(db, settings):
    make_operator()
    client = Client(HTTP_HOST="localhost")
    response = client.post("/console/login/", {"email": "op@operator.test", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/console/tenants/").status_code == 200
    client.post("/console/logout/")
    assert client.get("/console/tenants/").status_code == 302
    for _ in range(settings.PORTAL_LOGIN_FAILURE_LIMIT):
        client.post("/console/login/", {"email": "op@operator.test", "password": "wrong"})
    response = client.post("/console/login/", {"email": "op@operator.test", "password": PASSWORD})
    assert response.status_code == 429


def test_console_is_a_404_on_a_tenant_host(tenant_a, operator_client):
    client = portal_client(tenant_a)
    assert client.get("/console/login/").status_code == 404
    assert client.get("/console/tenants/").status_code == 404


def test_tenant_create_via_the_form_and_bad_slug_shown_next_to_field(operator_client):
    from tenants.models import Tenant

    before = Tenant.objects.count()
    response = operator_client.post("/console/tenants/", {"slug": "Bad Slug!", "name": "Bad", "currency": "USD"})
    assert response.status_code == 422
    assert b'id="id_slug_error"' in response.content
    assert Tenant.objects.count() == before

    response = operator_client.post("/console/tenants/", {"slug": "gamma-co", "name": "Gamma Co", "currency": "eur"})
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="gamma-co", is_sandbox=False)
    assert tenant.default_currency == "EUR"
    assert Tenant.objects.filter(slug="gamma-co", is_sandbox=True).exists()
    page = operator_client.get("/console/tenants/")
    assert b"gamma-co.localhost" in page.content


def test_suspend_makes_the_api_key_get_403_then_reactivate(tenant_a, operator_client, make_api_client):
    from audit.models import AuditEvent

    api = make_api_client(tenant_a)
    assert api.get("/api/v1/balances").status_code == 200
    response = operator_client.post(f"/console/tenants/{tenant_a.slug}/status", {"status": "suspended"})
    assert response.status_code == 302
    response = api.get("/api/v1/balances")
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_suspended"
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="tenant.suspend", actor="operator:op@operator.test").exists()
    operator_client.post(f"/console/tenants/{tenant_a.slug}/status", {"status": "active"})
    assert api.get("/api/v1/balances").status_code == 200


def test_deposit_request_approved_credits_exactly_once(tenant_a, operator_client):
    from audit.models import AuditEvent
    from funds.deposit_requests import deposit_request_create
    from funds.models import DepositRequestStatus
    from funds.selectors import balance_get, ledger_invariant_violations

    with tenant_context(tenant_a):
        before = balance_get(currency="USD")
        before_available = before.available if before else Decimal("0")
        deposit = deposit_request_create(currency="USD", amount="250.00", reference="WIRE-1", requested_by="f@a.test")
    page = operator_client.get("/console/deposits/")
    assert b"WIRE-1" in page.content
    url = f"/console/deposits/{tenant_a.schema_name}/{deposit.id}/approve"
    assert f'href="{url}"' in page.content.decode()  # the list's button opens the confirmation, it credits nothing
    assert operator_client.post(url, {"confirm": "on"}).status_code == 302
    response = operator_client.post(url, {"confirm": "on"}, follow=True)
    assert b"already credited" in response.content
    with tenant_context(tenant_a):
        deposit.refresh_from_db()
        assert deposit.status == DepositRequestStatus.CREDITED
        assert balance_get(currency="USD").available == before_available + Decimal("250.00")
        assert ledger_invariant_violations() == []
        assert AuditEvent.objects.filter(action="funds.deposit_request_approved").count() == 1
    assert b"WIRE-1" not in operator_client.get("/console/deposits/").content


def test_approve_and_credit_asks_for_confirmation_naming_tenant_amount_and_currency(tenant_a, operator_client):
    from funds.deposit_requests import deposit_request_create
    from funds.models import DepositRequestStatus
    from funds.selectors import balance_get, ledger_invariant_violations

    with tenant_context(tenant_a):
        before = balance_get(currency="USD")
        deposit = deposit_request_create(currency="USD", amount="12500.00", reference="WIRE-9", requested_by="f@a.test")
    url = f"/console/deposits/{tenant_a.schema_name}/{deposit.id}/approve"
    page = operator_client.get(url)
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="deposit-confirm"' in text
    assert f"Credit 12,500.00 USD to {tenant_a.name}?" in text and tenant_a.slug in text and "WIRE-9" in text
    assert 'type="checkbox" name="confirm"' in text

    refused = operator_client.post(url)  # a bare POST (the old one-click form) credits nothing
    assert refused.status_code == 422 and b"Tick the box to confirm" in refused.content
    with tenant_context(tenant_a):
        deposit.refresh_from_db()
        assert deposit.status == DepositRequestStatus.PENDING and balance_get(currency="USD") == before

    assert operator_client.post(url, {"confirm": "on"}).status_code == 302
    with tenant_context(tenant_a):
        deposit.refresh_from_db()
        assert deposit.status == DepositRequestStatus.CREDITED
        assert balance_get(currency="USD").available == (before.available if before else 0) + Decimal("12500.00")
        assert ledger_invariant_violations() == []
    assert operator_client.get(url).status_code == 302  # no confirmation page for a resolved request


def test_deposit_request_reject_credits_nothing(tenant_a, operator_client):
    from funds.deposit_requests import deposit_request_create
    from funds.selectors import balance_get

    with tenant_context(tenant_a):
        before = balance_get(currency="USD")
        deposit = deposit_request_create(currency="USD", amount="10.00", reference="WIRE-2", requested_by="f@a.test")
    operator_client.post(f"/console/deposits/{tenant_a.schema_name}/{deposit.id}/reject")
    with tenant_context(tenant_a):
        deposit.refresh_from_db()
        assert deposit.status == "rejected"
        assert balance_get(currency="USD") == before


def test_health_lists_disabled_endpoint_and_queue_lengths(tenant_b, operator_client):
    from webhooks.models import WebhookEndpoint

    with tenant_context(tenant_b):
        WebhookEndpoint.objects.create(
            url="https://hooks.example.com/dead", enabled=False, disabled_reason="Failing for 5 days"
        )
    response = operator_client.get("/console/health/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "https://hooks.example.com/dead" in body
    assert "Failing for 5 days" in body
    for name in ("default", "delivery", "webhooks", "bulk"):
        assert f'data-testid="queue-{name}"' in body
    assert "unknown" not in body  # the broker answered LLEN


def test_catalog_page(operator_client):
    response = operator_client.get("/console/catalog/")
    assert response.status_code == 200
    assert b"inventory_import" in response.content or b"No suppliers" in response.content


def test_inventory_upload_imports_codes_and_shows_bad_rows_next_to_the_file(operator_client):
    import uuid

    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.inventory import inventory_stock
    from catalog.tests.test_inventory import make_inventory_product

    _supplier, product = make_inventory_product()
    tag = uuid.uuid4().hex[:6].upper()
    good = "code,pin,denomination\n" + "".join(f"{tag}-OK-{i},{i},10\n" for i in range(3))
    response = operator_client.post(
        "/console/catalog/",
        {"product": str(product.pk), "batch": "PO-9", "file": SimpleUploadedFile("c.csv", good.encode())},
    )
    assert response.status_code == 302
    [line] = inventory_stock(product=product)
    assert line.available == 3
    page = operator_client.get("/console/catalog/")
    assert product.name.encode() in page.content

    bad = f"code,pin,denomination\n{tag}-NEW-1,1,10\n,2,10\n{tag}-NEW-3,3,999\n"
    response = operator_client.post(
        "/console/catalog/", {"product": str(product.pk), "file": SimpleUploadedFile("c.csv", bad.encode())}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="id_file_error"' in body
    assert "2 bad row(s); nothing was imported." in body
    assert "Row 3, code" in body
    [line] = inventory_stock(product=product)
    assert line.available == 3


def test_tenant_list_is_paged_and_searchable(operator_client, settings, monkeypatch):
    """With hundreds of tenants the page stays one page long (balances read for the shown tenants only)."""
    from portal.console import tenants as console_tenants
    from tenants.models import Tenant

    monkeypatch.setattr(console_tenants, "TENANTS_PER_PAGE", 1)  # alpha and beta exist: two pages of one
    first = operator_client.get("/console/tenants/").content.decode()
    assert 'data-testid="tenant-alpha"' in first and 'data-testid="tenant-beta"' not in first
    assert "Page 1 of" in first and 'rel="next"' in first
    total = Tenant.objects.filter(is_sandbox=False).exclude(schema_name="public").count()
    last = operator_client.get("/console/tenants/", {"page": total}).content.decode()
    assert 'data-testid="tenant-alpha"' not in last and 'rel="prev"' in last

    found = operator_client.get("/console/tenants/", {"q": "BETA"}).content.decode()  # name, any case
    assert 'data-testid="tenant-beta"' in found and 'data-testid="tenant-alpha"' not in found
    none = operator_client.get("/console/tenants/", {"q": "no-such-tenant"}).content.decode()
    assert "No tenant matches" in none
    assert operator_client.get("/console/tenants/", {"page": "junk"}).status_code == 200  # first page


def test_brand_logo_upload_is_checked_and_stored(operator_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import Brand
    from catalog.services import brand_upsert
    from catalog.tests.test_logos import png

    brand = brand_upsert(slug="console-logo", name="Console Logo Co")
    svg = SimpleUploadedFile("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", content_type="image/svg+xml")
    refused = operator_client.post("/console/catalog/", {"action": "logo", "brand": brand.slug, "logo": svg})
    assert refused.status_code == 422 and "SVG logos are not accepted" in refused.content.decode()

    upload = SimpleUploadedFile("logo.png", png(), content_type="image/png")
    saved = operator_client.post("/console/catalog/", {"action": "logo", "brand": brand.slug, "logo": upload})

    assert saved.status_code == 302
    assert Brand.objects.get(pk=brand.pk).logo_id.endswith(".png")


def test_the_console_speaks_the_operators_language_else_the_browsers(operator_client):
    operator_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ms-MY,ms;q=0.9"
    page = operator_client.get("/console/tenants/").content.decode()
    assert '<html lang="ms">' in page and ">Semua penyewa" in page and ">Cipta penyewa</button>" in page
    assert "Konsol pengendali" in operator_client.get("/console/health/").content.decode()

    operator_client.post("/console/language/", {"language": "en", "next": "/console/deposits/"})  # their own choice
    page = operator_client.get("/console/deposits/").content.decode()
    assert '<html lang="en">' in page and "No pending deposit requests." in page
    refused = operator_client.post("/console/language/", {"language": "xx"}, follow=True).content.decode()
    assert "One of en, ms." in refused


def test_deposit_instructions_set_in_the_console_show_on_the_tenants_funds_page(
    tenant_a, operator_client, settings, signed_in
):
    settings.FUNDS_DEPOSIT_INSTRUCTIONS = "Server default, ref {reference}"
    refused = operator_client.post("/console/deposits/instructions/", {"currency": "US1", "text": "x"})
    assert refused.status_code == 400 and "Three letters." in refused.content.decode()
    response = operator_client.post(
        "/console/deposits/instructions/", {"currency": "usd", "text": "Bank: Maybank\nReference: {reference}"}
    )
    assert response.status_code == 302
    listing = operator_client.get("/console/deposits/instructions/").content.decode()
    assert "Bank: Maybank" in listing and "op@operator.test" in listing
    client, _ = signed_in("finance")
    page = client.get("/funds/").content.decode()
    assert "Bank: Maybank<br>Reference: ALPHA-FUNDS" in page and "Server default" not in page
    operator_client.post("/console/deposits/instructions/", {"currency": "USD", "text": ""})  # removed: default
    assert "Server default, ref ALPHA-FUNDS" in client.get("/funds/").content.decode()
