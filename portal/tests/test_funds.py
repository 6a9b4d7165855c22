"""Funds page: roles, balances, statement filters and export, deposit requests, low-balance thresholds and alerts."""

from decimal import Decimal

from django.core import mail
from django_tenants.utils import schema_context, tenant_context

from accounts.models import User
from audit.models import AuditEvent
from funds.models import DepositRequest, LedgerAccount
from funds.selectors import low_balance_recipients
from funds.services import funds_deposit, funds_hold
from testsupport.exports import csv_export_rows
from testsupport.portal import make_staff, portal_client, sign_in


def test_viewer_and_manager_are_refused_finance_and_admin_see_balances(signed_in, staff, funded_a, tenant_a):
    for role in ("viewer", "manager"):
        client = portal_client(tenant_a)
        sign_in(client, staff(role).email)
        assert client.get("/funds/").status_code == 403
        assert client.get("/funds/statement.csv").status_code == 403
        assert client.post("/funds/", {"form": "threshold", "currency": "USD", "threshold": "1"}).status_code == 403
    client, _ = signed_in("finance")
    page = client.get("/funds/").content.decode()
    assert "1,000.00 USD" in page and "Deposit" in page


def test_statement_filters_by_kind_currency_and_date(signed_in, funded_a):
    with tenant_context(funded_a):
        funds_deposit(currency="EUR", amount="50.00", reference="wire-eur")
        funds_hold(currency="USD", amount=Decimal("10.00"), reference="reward:x")
    client, _ = signed_in("finance")
    page = client.get("/funds/", {"currency": "eur"}).content.decode()
    assert "wire-eur" in page and "reward:x" not in page
    page = client.get("/funds/", {"kind": "hold"}).content.decode()
    assert "reward:x" in page and "wire-eur" not in page
    page = client.get("/funds/", {"since": "2001-01-01", "until": "2001-01-02"}).content.decode()
    assert "No transactions match." in page
    bad = client.get("/funds/", {"currency": "DOLLARS"}).content.decode()
    assert 'class="field has-error"' in bad


def test_statement_export_is_filtered_and_neutralised(signed_in, funded_a, tenant_a):
    with tenant_context(funded_a):
        funds_deposit(currency="USD", amount="5.00", description='=HYPERLINK("http://x")', reference="r-1")
        funds_deposit(currency="USD", amount="6.00", description="Wire;@SUM(A1:A9)", reference="r-2")
    client, _ = signed_in("finance")
    response = client.get("/funds/statement.csv", {"kind": "deposit"})
    assert response.streaming and response["Cache-Control"] == "no-store"
    header, *lines = csv_export_rows(response)
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    assert {r["kind"] for r in rows} == {"deposit"} and len(rows) == 3
    [evil] = [r for r in rows if r["reference"] == "r-1"]
    assert evil["description"] == '\'=HYPERLINK("http://x")' and evil["amount"] == "5.00"
    [semicolon] = [r for r in rows if r["reference"] == "r-2"]
    assert semicolon["description"] == "Wire;'@SUM(A1:A9)"
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="funds.statement_export").count() == 1


def test_deposit_request_is_stored_audited_and_emailed_to_operators(
    signed_in, tenant_a, django_capture_on_commit_callbacks
):
    with schema_context("public"):
        User.objects.create_user(email="operator@platform.test", password="x" * 12, is_staff=True)
    client, user = signed_in("finance")
    bad = client.post("/funds/", {"form": "deposit_request", "amount": "-5", "currency": "USD", "reference": ""})
    assert bad.status_code == 200 and bad.content.decode().count('class="field has-error"') == 2
    # typed as people type ("2,500.00" below); digits from other scripts and bad grouping are refused by the field
    for typed in ("٢٥٠٠", "2.500,00", "1e3"):
        form = {"form": "deposit_request", "amount": typed, "currency": "USD", "reference": "W"}
        refused = client.post("/funds/", form)
        page = refused.content.decode()
        assert refused.status_code == 200 and ("Not an amount" in page or "Check the separators" in page), typed
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/funds/", {"form": "deposit_request", "amount": "2,500.00", "currency": "usd", "reference": "WIRE-42"}
        )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        deposit = DepositRequest.objects.get()
        assert AuditEvent.objects.filter(action="funds.deposit_request", object_id=str(deposit.id)).exists()
    assert (deposit.amount, deposit.currency, deposit.reference, deposit.status) == (
        Decimal("2500.00"),
        "USD",
        "WIRE-42",
        "pending",
    )
    assert deposit.requested_by == user.email
    [message] = mail.outbox
    assert message.to == ["operator@platform.test"] and "2500.00 USD" in message.subject and "WIRE-42" in message.body
    assert "WIRE-42" in client.get("/funds/").content.decode()


def test_threshold_and_recipients_are_saved_and_the_alert_emails_them(
    signed_in, funded_a, tenant_a, django_capture_on_commit_callbacks
):
    client, _ = signed_in("finance")
    bad = client.post("/funds/", {"form": "threshold", "currency": "USD", "threshold": "abc"})
    assert bad.status_code == 200 and 'class="field has-error"' in bad.content.decode()
    assert client.post("/funds/", {"form": "threshold", "currency": "USD", "threshold": "900.00"}).status_code == 302
    bad = client.post("/funds/", {"form": "recipients", "emails": "cfo@alpha.test, nope"})
    assert "Not an email address: nope" in bad.content.decode()
    client.post("/funds/", {"form": "recipients", "emails": "CFO@alpha.test\nops@alpha.test"})
    with tenant_context(tenant_a):
        assert LedgerAccount.objects.get(currency="USD", kind="cash").low_balance_threshold == Decimal("900")
        assert low_balance_recipients() == ["cfo@alpha.test", "ops@alpha.test"]
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {"funds.low_balance_threshold", "funds.low_balance_recipients"} <= actions
        with django_capture_on_commit_callbacks(execute=True):
            funds_hold(currency="USD", amount=Decimal("200.00"), reference="reward:y")
    [alert] = [m for m in mail.outbox if "Low balance" in m.subject]
    assert sorted(alert.to) == ["cfo@alpha.test", "ops@alpha.test"] and "800.00 USD" in alert.subject
    assert "900.00 USD" in client.get("/funds/").content.decode()


def test_tenant_b_sees_only_its_own_funds(funded_a, tenant_b, tenant_a):
    with tenant_context(tenant_a):
        funds_deposit(currency="USD", amount="1.00", reference="alpha-only")
    make_staff(tenant_b, "finance@beta.test", "finance")
    client = portal_client(tenant_b)
    sign_in(client, "finance@beta.test")
    page = client.get("/funds/").content.decode()
    assert "alpha-only" not in page and "1,000.00" not in page


def test_funds_page_query_budget(signed_in, funded_a, django_assert_max_num_queries):
    with tenant_context(funded_a):
        for i in range(20):
            funds_deposit(currency="USD", amount="1.00", reference=f"d{i}")
    client, _ = signed_in("finance")
    # 14 for the page as it was, + the monthly statement (2), the running balance (3) and the deposit currencies
    # (1), the operator's deposit instructions (1): none grows with the number of ledger lines.
    with django_assert_max_num_queries(21):
        assert client.get("/funds/").status_code == 200
