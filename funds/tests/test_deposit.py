"""Deposits: prepaid funds credited to the cash (available) account, announced as balance.credited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import ApplicationError
from funds.selectors import ledger_invariant_violations, transaction_list
from funds.services import funds_deposit
from testsupport.funds import balances
from webhooks.models import Event

pytestmark = pytest.mark.usefixtures("in_tenant_a")


def test_a_deposit_is_available_at_once_and_announced():
    cash = funds_deposit(currency="usd", amount="250.50", reference="WIRE-1")
    assert cash.balance == Decimal("250.50")
    funds_deposit(currency="USD", amount="49.50")
    assert balances("USD") == (Decimal("300.00"), 0, Decimal("300.00"))
    deposits = list(transaction_list(kind="deposit").order_by("created_at"))
    assert [(t.amount, t.reference) for t in deposits] == [(Decimal("250.50"), "WIRE-1"), (Decimal("49.50"), "")]
    credited = [e.data for e in Event.objects.filter(type="balance.credited").order_by("created_at")]
    assert credited == [
        {"currency": "USD", "amount": "250.50", "available": "250.50"},
        {"currency": "USD", "amount": "49.50", "available": "300.00"},
    ]
    assert ledger_invariant_violations() == []


def test_each_currency_has_its_own_balance():
    funds_deposit(currency="USD", amount="10.00")
    funds_deposit(currency="JPY", amount="5000")
    assert balances("USD") == (Decimal("10.00"), 0, Decimal("10.00"))
    assert balances("JPY") == (Decimal("5000"), 0, Decimal("5000"))
    assert balances("EUR") == (0, 0, 0)
    assert ledger_invariant_violations() == []


@pytest.mark.parametrize(
    ("currency", "amount", "field"),
    [
        ("USD", "0", "amount"),
        ("USD", "-5.00", "amount"),
        ("USD", "1.005", "amount"),  # three decimals: USD has two
        ("JPY", "100.5", "amount"),  # JPY has none
        ("USD", "ten", "amount"),
        ("USD", "NaN", "amount"),
        ("US", "10.00", "currency"),
        ("U5D", "10.00", "currency"),
        ("", "10.00", "currency"),
    ],
)
def test_a_bad_deposit_is_refused_and_changes_nothing(currency, amount, field):
    funds_deposit(currency="USD", amount="5.00")
    with pytest.raises(ApplicationError) as refused:
        funds_deposit(currency=currency, amount=amount)
    assert refused.value.code == "validation_error" and field in refused.value.errors
    assert balances("USD") == (Decimal("5.00"), 0, Decimal("5.00"))
    assert transaction_list(kind="deposit").count() == 1
    assert ledger_invariant_violations() == []
