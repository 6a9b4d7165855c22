"""Approval emails through the real SMTP sink: the people who may approve hear of a request (never its maker), each
in their own language with the amount, who asked and a link to the queue; whoever asked hears how it ended."""

import email
from datetime import timedelta
from decimal import Decimal
from email import policy

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from freezegun import freeze_time

from accounts.services import staff_set_active
from core.errors import ApplicationError
from funds.selectors import ledger_invariant_violations
from orders.approval_notices import APPROVER_ROLES
from orders.create import order_create
from orders.planning import RewardInput
from orders.selectors import order_render
from orders.tasks import approval_notice_task, order_approvals_expire_task
from portal.permissions import ROLE_PERMISSIONS, Perm
from tenants.models import Tenant
from tenants.policies import approval_policy_set
from testsupport.batches import csv_bytes, digital_rows, upload
from testsupport.funds import balances
from testsupport.portal import make_staff, portal_client, sign_in


@pytest.fixture
def smtp(settings, smtp_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.PUBLIC_BASE_URL = "https://rewards.example.com"
    smtp_server.messages.clear()
    return smtp_server


@pytest.fixture
def notices_run_here(monkeypatch):
    """The task the worker would run, run in this process in the schema it was sent for (the publish is the
    only thing replaced: what it sends goes through the real SMTP sink)."""
    published = []

    def publish(name, *, args, headers, **_):
        published.append(name)
        with tenant_context(Tenant.objects.get(schema_name=headers["_schema_name"])):
            approval_notice_task(*args)
        return True

    monkeypatch.setattr("orders.approval_notices.task_publish", publish)
    return published


@pytest.fixture
def team(funded_a):
    """A manager who sends, two approvers (an admin reading English, finance reading Malay), a viewer, and a
    finance colleague who left."""
    manager = make_staff(funded_a, "maker@alpha.test", "manager")
    admin = make_staff(funded_a, "boss@alpha.test", "admin")
    finance = make_staff(funded_a, "siti@alpha.test", "finance")
    make_staff(funded_a, "viewer@alpha.test", "viewer")
    gone = make_staff(funded_a, "gone@alpha.test", "finance")
    with tenant_context(funded_a):
        finance.language = "ms"
        finance.name = "Siti"
        finance.save(update_fields=["language", "name"])
        staff_set_active(acting_user=admin, user=gone, active=False)
    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "100.00"}, "expires_after_days": 3}, actor=None)
    return manager, admin, finance


def _mails(smtp) -> dict[str, list[email.message.EmailMessage]]:
    by_recipient: dict[str, list] = {}
    for raw in smtp.messages:
        message = email.message_from_string(raw["data"], policy=policy.default)
        for to in raw["to"]:
            by_recipient.setdefault(to, []).append(message)
    return by_recipient


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def _portal_order(tenant, shop, maker, amount: str = "150.00") -> str:
    """An order the manager places in the portal (as the send page does): over the threshold, so it waits."""
    with tenant_context(tenant):
        status, body, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("50"),
                                 quantity=int(Decimal(amount) / 50), delivery_method="email",
                                 recipient={"name": "Ada", "email": "ada@example.com"})],
            idempotency_key=None, body_hash="x", render=order_render, created_by_email=maker.email,
            created_by_role=maker.role,
        )  # fmt: skip
    assert status == 202
    return body["id"]


def test_roles_that_are_mailed_are_the_roles_that_may_approve():
    assert set(APPROVER_ROLES) == {role for role, perms in ROLE_PERMISSIONS.items() if Perm.APPROVE in perms}


def test_approvers_are_mailed_in_their_language_and_the_maker_hears_the_outcome(
    funded_a, shop, team, smtp, notices_run_here, django_capture_on_commit_callbacks
):
    manager, _, finance = team
    with django_capture_on_commit_callbacks(execute=True):
        order_id = _portal_order(funded_a, shop, manager)
    mails = _mails(smtp)
    # Only those who may approve, active, never the maker; one email each (nobody sees the others' addresses).
    assert sorted(mails) == ["boss@alpha.test", "siti@alpha.test"]
    [english] = mails["boss@alpha.test"]
    assert english["Subject"] == "Approval needed: order of 150.00 USD from maker@alpha.test"
    body = _text(english)
    assert "maker@alpha.test asks for approval of an order of 3 rewards in Alpha Corp" in body
    assert "Amount: 150.00 USD" in body
    assert "https://alpha.localhost/approvals/" in body
    expires = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d")
    assert f"Decide by: {expires}" in body
    [malay] = mails["siti@alpha.test"]
    assert malay["Subject"].startswith("Kelulusan diperlukan") and "150.00 USD" in malay["Subject"]
    assert "Siti" in _text(malay) and "https://alpha.localhost/approvals/" in _text(malay)
    html = malay.get_body(preferencelist=("html",)).get_content()
    assert 'lang="ms"' in html and 'href="https://alpha.localhost/approvals/"' in html

    # The finance approver rejects it in the portal: the maker hears why; the approvers hear nothing more.
    smtp.messages.clear()
    client = portal_client(funded_a)
    assert sign_in(client, finance.email).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/approvals/order/{order_id}/reject", {"reason": "Over the <b>quarter</b>'s budget"})
    mails = _mails(smtp)
    assert sorted(mails) == ["maker@alpha.test"]
    [outcome] = mails["maker@alpha.test"]
    assert outcome["Subject"] == "Rejected: your request for 150.00 USD"
    text = _text(outcome)
    assert "siti@alpha.test rejected your order of 150.00 USD" in text
    assert "Reason: Over the <b>quarter</b>'s budget" in text
    assert f"https://alpha.localhost/orders/{order_id}/" in text
    html = outcome.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;quarter&lt;/b&gt;" in html and "<b>quarter</b>" not in html
    with tenant_context(funded_a):
        assert balances("USD")[1] == Decimal(0) and ledger_invariant_violations() == []


def test_approved_and_expired_requests_tell_whoever_asked(
    funded_a, shop, team, smtp, notices_run_here, django_capture_on_commit_callbacks
):
    manager, admin, _ = team
    with django_capture_on_commit_callbacks(execute=True):
        approved = _portal_order(funded_a, shop, manager)
        _portal_order(funded_a, shop, manager, "200.00")
    smtp.messages.clear()
    client = portal_client(funded_a)
    assert sign_in(client, admin.email).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/approvals/order/{approved}/approve")
    with django_capture_on_commit_callbacks(execute=True), freeze_time(timezone.now() + timedelta(days=3, minutes=1)):
        assert order_approvals_expire_task() == 1
    subjects = sorted(message["Subject"] for message in _mails(smtp)["maker@alpha.test"])
    assert subjects == ["Approved: your request for 150.00 USD", "Expired: your request for 200.00 USD"]
    texts = " ".join(_text(m) for m in _mails(smtp)["maker@alpha.test"])
    assert "boss@alpha.test approved your order of 150.00 USD: its rewards are being sent now." in texts
    assert "See the order:\nhttps://alpha.localhost/orders/" in texts.replace("\r\n", "\n")  # was a bare link
    assert "Nobody decided on your order of 200.00 USD in time" in texts
    assert set(_mails(smtp)) == {"maker@alpha.test"}


def test_a_batch_from_an_api_key_mails_every_approver_and_its_decision_mails_nobody(
    api_a, funded_a, shop, team, smtp, notices_run_here, make_api_client, django_capture_on_commit_callbacks
):
    preview = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 30, domain="d.example")), name="Q4 bonus.csv")
    with django_capture_on_commit_callbacks(execute=True):
        batch = api_a.post(f"/api/v1/batches/{preview.json()['id']}/confirm").json()
    assert batch["status"] == "pending_approval"
    mails = _mails(smtp)
    assert sorted(mails) == ["boss@alpha.test", "siti@alpha.test"]
    [english] = mails["boss@alpha.test"]
    assert english["Subject"] == f"Approval needed: bulk batch of 300.00 USD from API key {api_a.key.key_id}"
    assert "(30 rows)" in _text(english)
    smtp.messages.clear()
    checker = make_api_client(funded_a, scopes=["approve"])
    with django_capture_on_commit_callbacks(execute=True):
        assert checker.post(f"/api/v1/batches/{batch['id']}/approve").status_code == 200
    assert smtp.messages == []  # an API key's caller hears through the batch.approved webhook
    assert notices_run_here == ["orders.tasks.approval_notice_task"] * 2


def test_a_refused_request_mails_nobody(
    funded_a, shop, team, smtp, notices_run_here, django_capture_on_commit_callbacks
):
    manager, _, _ = team
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError):
        _portal_order(funded_a, shop, manager, "5000.00")  # more than the 1,000.00 USD available: rolled back
    assert smtp.messages == [] and notices_run_here == []
