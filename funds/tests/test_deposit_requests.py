"""Deposit requests: a tenant says it sent money; an operator approves (credited once) or rejects (nothing)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.models import User
from audit.actors import Actor
from core.errors import ApplicationError, NotFoundError
from funds.deposit_requests import deposit_request_approve, deposit_request_create, deposit_request_reject
from funds.selectors import deposit_request_list, ledger_invariant_violations, transaction_list
from testsupport.funds import balances

pytestmark = pytest.mark.usefixtures("in_tenant_a")


@pytest.fixture
def operator(in_tenant_a) -> None:
    with schema_context(get_public_schema_name()):
        User.objects.create_user("operator@platform.test", "operator-password", is_staff=True)


@pytest.mark.usefixtures("operator")
def test_a_request_credits_nothing_and_emails_the_operators_after_commit(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deposit = deposit_request_create(
            currency="usd", amount="1250.00", reference="  WIRE-42 ", requested_by="finance@alpha.test"
        )
    assert (deposit.status, deposit.currency, deposit.amount, deposit.reference) == (
        "pending",
        "USD",
        Decimal("1250.00"),
        "WIRE-42",
    )
    assert balances() == (0, 0, 0)  # a notice is not money
    [email] = mailoutbox
    assert email.to == ["operator@platform.test"]
    assert email.subject == f"Deposit request: 1250.00 USD from {tenant_a.name}"
    assert "WIRE-42" in email.body and str(deposit.id) in email.body


def test_with_nothing_committed_nobody_is_emailed(mailoutbox):
    with transaction.atomic():
        deposit_request_create(currency="USD", amount="10.00", reference="WIRE-1", requested_by="f@alpha.test")
        transaction.set_rollback(True)
    assert mailoutbox == [] and deposit_request_list().count() == 0


@pytest.mark.parametrize(
    ("amount", "reference", "field"),
    [("100000000.01", "WIRE-1", "amount"), ("0", "WIRE-1", "amount"), ("10.00", "   ", "reference")],
)
def test_a_bad_request_is_refused_and_nothing_is_recorded(amount, reference, field, mailoutbox):
    with pytest.raises(ApplicationError) as refused:
        deposit_request_create(currency="USD", amount=amount, reference=reference, requested_by="f@alpha.test")
    assert refused.value.code == "validation_error" and field in refused.value.errors
    assert deposit_request_list().count() == 0 and mailoutbox == []


def test_approval_credits_the_ledger_exactly_once():
    deposit = deposit_request_create(currency="USD", amount="250.00", reference="WIRE-7", requested_by="f@alpha.test")
    approved = deposit_request_approve(request_id=deposit.id, actor=Actor.operator("operator@platform.test"))
    assert approved.status == "credited" and approved.resolved_at is not None
    assert balances() == (Decimal("250.00"), 0, Decimal("250.00"))
    credit = transaction_list(kind="deposit").get()
    assert credit.reference == f"deposit_request:{deposit.id}" and "operator@platform.test" in credit.description
    for resolve in (deposit_request_approve, deposit_request_reject):
        with pytest.raises(ApplicationError) as refused:
            resolve(request_id=deposit.id, actor=Actor.operator("someone@platform.test"))
        assert (refused.value.code, refused.value.status) == ("deposit_request_resolved", 409)
    assert balances() == (Decimal("250.00"), 0, Decimal("250.00"))
    assert ledger_invariant_violations() == []


def test_rejection_credits_nothing_and_is_final():
    deposit = deposit_request_create(currency="USD", amount="80.00", reference="WIRE-8", requested_by="f@alpha.test")
    rejected = deposit_request_reject(request_id=deposit.id, actor=Actor.operator("operator@platform.test"))
    assert rejected.status == "rejected" and rejected.resolved_at is not None
    with pytest.raises(ApplicationError) as refused:
        deposit_request_approve(request_id=deposit.id, actor=Actor.operator("operator@platform.test"))
    assert refused.value.code == "deposit_request_resolved"
    assert balances() == (0, 0, 0)
    assert transaction_list(kind="deposit").count() == 0
    assert ledger_invariant_violations() == []


def test_an_unknown_request_is_not_found():
    with pytest.raises(NotFoundError):
        deposit_request_approve(request_id=uuid.uuid4(), actor=Actor.operator("operator@platform.test"))
    assert balances() == (0, 0, 0)


def test_an_operator_reads_the_request_in_their_console_language(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with schema_context(get_public_schema_name()):
        User.objects.create_user("pengendali@platform.test", "operator-password", is_staff=True, language="ms")
        User.objects.create_user("operator@platform.test", "operator-password", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        deposit_request_create(currency="USD", amount="1250.00", reference="WIRE-43", requested_by="f@alpha.test")

    by_recipient = {tuple(email.to): email for email in mailoutbox}
    malay = by_recipient[("pengendali@platform.test",)]
    assert malay.subject == f"Permintaan deposit: 1250.00 USD daripada {tenant_a.name}"
    assert "Rujukan: WIRE-43" in malay.body and "Luluskannya dalam konsol pengendali" in malay.body
    assert by_recipient[("operator@platform.test",)].subject.startswith("Deposit request: 1250.00 USD")
