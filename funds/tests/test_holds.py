"""Holds: an order earmarks funds (available → held); fulfilment captures them (spent) or releases them back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from core.errors import ApplicationError
from funds.models import Hold
from funds.selectors import ledger_invariant_violations, transaction_list
from funds.services import InsufficientFunds, funds_deposit, funds_hold, funds_hold_capture, funds_hold_release
from testsupport.funds import balances

pytestmark = pytest.mark.usefixtures("in_tenant_a")


@pytest.fixture
def funded(in_tenant_a):
    funds_deposit(currency="USD", amount="100.00")


@pytest.mark.usefixtures("funded")
def test_a_hold_moves_available_funds_to_held():
    hold = funds_hold(currency="USD", amount=Decimal("30.00"), reference="reward:1")
    assert (hold.status, hold.amount, hold.reference) == ("pending", Decimal("30.00"), "reward:1")
    assert balances() == (Decimal("100.00"), Decimal("30.00"), Decimal("70.00"))  # posted is unchanged
    assert transaction_list(kind="hold").get().description == "Hold for reward:1"
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_a_hold_larger_than_available_is_refused_and_changes_nothing():
    funds_hold(currency="USD", amount=Decimal("60.00"), reference="reward:1")
    # A hold runs in its caller's transaction (the order's): a refusal rolls that whole block back.
    with pytest.raises(InsufficientFunds) as refused, transaction.atomic():
        funds_hold(currency="USD", amount=Decimal("40.01"), reference="reward:2")
    assert (refused.value.code, refused.value.status) == ("insufficient_funds", 402)
    assert "40.01 USD" in refused.value.detail
    assert balances() == (Decimal("100.00"), Decimal("60.00"), Decimal("40.00"))
    assert Hold.objects.count() == 1
    funds_hold(currency="USD", amount=Decimal("40.00"), reference="reward:3")  # exactly what is left is fine
    assert balances() == (Decimal("100.00"), Decimal("100.00"), 0)
    assert ledger_invariant_violations() == []


def test_a_hold_in_a_currency_never_deposited_is_refused():
    with pytest.raises(InsufficientFunds), transaction.atomic():
        funds_hold(currency="GBP", amount=Decimal("1.00"), reference="reward:1")
    assert balances("GBP") == (0, 0, 0)
    assert Hold.objects.count() == 0
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1.00")])
def test_a_hold_must_be_positive(amount):
    with pytest.raises(ApplicationError) as refused:
        funds_hold(currency="USD", amount=amount, reference="reward:1")
    assert refused.value.code == "validation_error"
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))


@pytest.mark.usefixtures("funded")
def test_capture_spends_the_held_funds_once():
    hold = funds_hold(currency="USD", amount=Decimal("25.00"), reference="reward:1")
    captured = funds_hold_capture(hold=hold)
    assert captured.status == "captured" and captured.resolved_at is not None
    assert balances() == (Decimal("75.00"), 0, Decimal("75.00"))  # spent: gone from posted
    again = funds_hold_capture(hold=hold)  # a retried task: nothing more is spent
    assert again.status == "captured"
    assert balances() == (Decimal("75.00"), 0, Decimal("75.00"))
    assert transaction_list(kind="capture").count() == 1
    with pytest.raises(ApplicationError) as refused:
        funds_hold_release(hold=hold)
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    assert balances() == (Decimal("75.00"), 0, Decimal("75.00"))
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_release_gives_the_held_funds_back_once():
    hold = funds_hold(currency="USD", amount=Decimal("25.00"), reference="reward:1")
    released = funds_hold_release(hold=hold)
    assert released.status == "released" and released.resolved_at is not None
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    funds_hold_release(hold=hold)  # a retried task: nothing more comes back
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert transaction_list(kind="release").count() == 1
    with pytest.raises(ApplicationError) as refused:
        funds_hold_capture(hold=hold)
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    assert balances() == (Decimal("100.00"), 0, Decimal("100.00"))
    assert ledger_invariant_violations() == []


@pytest.mark.usefixtures("funded")
def test_holds_resolve_independently():
    first = funds_hold(currency="USD", amount=Decimal("10.00"), reference="reward:1")
    second = funds_hold(currency="USD", amount=Decimal("20.00"), reference="reward:2")
    third = funds_hold(currency="USD", amount=Decimal("30.00"), reference="reward:3")
    funds_hold_capture(hold=first)
    funds_hold_release(hold=second)
    assert balances() == (Decimal("90.00"), Decimal("30.00"), Decimal("60.00"))
    funds_hold_capture(hold=third)
    assert balances() == (Decimal("60.00"), 0, Decimal("60.00"))
    assert ledger_invariant_violations() == []
