"""Holds posted at commit: the hold is written in the transaction, the money moves as it commits, or nothing does.

These run on a committed tenant (no test transaction around them): the posting happens in a real COMMIT.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from funds.models import Hold, HoldPostingAtCommit, LedgerEntry
from funds.selectors import ledger_invariant_violations, transaction_list
from funds.services import (
    HoldRefusedAtCommit,
    funds_deposit,
    funds_hold,
    funds_hold_release,
    funds_set_low_balance_threshold,
    holds_refused_at_commit,
)
from testsupport.funds import balances
from webhooks.models import Event


@pytest.fixture
def funded(committed_tenant):
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
        yield


def _other_connection_balances() -> tuple[Decimal, Decimal, Decimal]:
    """The balances another session sees (what is committed), read from a second connection."""
    import threading

    from django.db import connections

    seen: list[tuple[Decimal, Decimal, Decimal]] = []
    schema = connection.schema_name

    def read() -> None:
        from django_tenants.utils import schema_context

        with schema_context(schema):
            seen.append(balances())
        connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    return seen[0]


@pytest.mark.usefixtures("funded")
def test_the_money_moves_when_the_transaction_commits():
    with holds_refused_at_commit(), transaction.atomic():
        hold = funds_hold(currency="USD", amount=Decimal("30.00"), reference="reward:1", at_commit=True)
        # Written, but not posted yet: the cash row is not touched (nor locked) until COMMIT.
        assert HoldPostingAtCommit.objects.count() == 1
        assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert _other_connection_balances() == (Decimal("100.00"), Decimal("30.00"), Decimal("70.00"))
    assert balances() == (Decimal("100.00"), Decimal("30.00"), Decimal("70.00"))
    assert HoldPostingAtCommit.objects.count() == 0  # the trigger deletes each row as it posts it
    assert Hold.objects.get().pk == hold.pk and hold.status == "pending"
    txn = transaction_list(kind="hold").get()
    assert (txn.description, txn.amount, txn.reference) == ("Hold for reward:1", Decimal("30.00"), "reward:1")
    assert sorted(LedgerEntry.objects.filter(transaction=txn).values_list("amount", flat=True)) == [
        Decimal("-30.00"),
        Decimal("30.00"),
    ]
    funds_hold_release(hold=hold)  # an ordinary hold from here on
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_a_hold_that_available_funds_do_not_cover_fails_the_commit_and_leaves_nothing():
    with pytest.raises(HoldRefusedAtCommit, match="insufficient funds"), holds_refused_at_commit():
        with transaction.atomic():
            funds_hold(currency="USD", amount=Decimal("60.00"), reference="reward:1", at_commit=True)
            funds_hold(currency="USD", amount=Decimal("40.01"), reference="reward:2", at_commit=True)
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert (Hold.objects.count(), HoldPostingAtCommit.objects.count()) == (0, 0)
    assert transaction_list(kind="hold").count() == 0
    with holds_refused_at_commit(), transaction.atomic():  # exactly what is available is fine
        funds_hold(currency="USD", amount=Decimal("60.00"), reference="reward:3", at_commit=True)
        funds_hold(currency="USD", amount=Decimal("40.00"), reference="reward:4", at_commit=True)
    assert balances() == (Decimal("100.00"), Decimal("100.00"), 0)
    assert ledger_invariant_violations() == []


def test_a_currency_never_deposited_is_refused_at_commit(committed_tenant):
    with tenant_context(committed_tenant):
        with pytest.raises(HoldRefusedAtCommit), holds_refused_at_commit(), transaction.atomic():
            funds_hold(currency="GBP", amount=Decimal("1.00"), reference="reward:1", at_commit=True)
        assert balances("GBP") == (0, 0, 0)
        assert Hold.objects.count() == 0
        assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_crossing_the_low_balance_threshold_is_left_to_the_posting_in_the_transaction():
    """At commit there is no way to write the balance.low event any more: such a hold is refused there, and the
    caller posts it in the transaction instead, which records the event (orders.create does)."""
    funds_set_low_balance_threshold(currency="USD", threshold="50.00")
    with holds_refused_at_commit(), transaction.atomic():  # 100 → 60: still above the threshold
        funds_hold(currency="USD", amount=Decimal("40.00"), reference="reward:1", at_commit=True)
    with pytest.raises(HoldRefusedAtCommit, match="low-balance"), holds_refused_at_commit():
        with transaction.atomic():  # 60 → 40 would cross it
            funds_hold(currency="USD", amount=Decimal("20.00"), reference="reward:2", at_commit=True)
    assert balances() == (Decimal("100.00"), Decimal("40.00"), Decimal("60.00"))
    with transaction.atomic():
        funds_hold(currency="USD", amount=Decimal("20.00"), reference="reward:2")
    assert [e.data["available"] for e in Event.objects.filter(type="balance.low")] == ["40.00"]
    with holds_refused_at_commit(), transaction.atomic():  # already below: no crossing, no refusal
        funds_hold(currency="USD", amount=Decimal("5.00"), reference="reward:3", at_commit=True)
    assert balances() == (Decimal("100.00"), Decimal("65.00"), Decimal("35.00"))
    assert Event.objects.filter(type="balance.low").count() == 1
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_other_errors_at_commit_pass_through():
    from django.db import IntegrityError

    from funds.models import LedgerAccount

    cash = LedgerAccount.objects.get(currency="USD", kind="cash")
    with pytest.raises(IntegrityError), holds_refused_at_commit(), transaction.atomic():
        funds_hold(currency="USD", amount=Decimal("10.00"), reference="reward:1", at_commit=True)
        with connection.cursor() as cursor:  # a foreign key checked at commit that fails there, as a bug would
            cursor.execute(
                f"INSERT INTO {LedgerEntry._meta.db_table} (transaction_id, account_id, amount) "
                "VALUES (gen_random_uuid(), %s, 0)",
                [cash.pk],
            )
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert Hold.objects.count() == 0
    assert ledger_invariant_violations() == []


def test_the_posting_lands_in_the_holds_schema_whatever_the_session_reads_last(committed_tenant):
    from django_tenants.utils import schema_context

    from tenants.models import Tenant

    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
    with holds_refused_at_commit(), transaction.atomic():
        with tenant_context(committed_tenant):
            funds_hold(currency="USD", amount=Decimal("30.00"), reference="reward:1", at_commit=True)
        with schema_context("public"):  # the session's search_path is public's when COMMIT runs the trigger
            assert Tenant.objects.filter(pk=committed_tenant.pk).exists()
    with tenant_context(committed_tenant):
        assert balances() == (Decimal("100.00"), Decimal("30.00"), Decimal("70.00"))
        assert ledger_invariant_violations() == []
