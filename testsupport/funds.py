"""Reading money as a tenant does: the balances the funds page and GET /api/v1/balances show."""

from __future__ import annotations

from decimal import Decimal

from funds.selectors import balance_get


def balances(currency: str = "USD") -> tuple[Decimal, Decimal, Decimal]:
    """(posted, held, available) in the current schema, as balance_get reports them; zeros before any posting."""
    balance = balance_get(currency=currency)
    if balance is None:
        return Decimal(0), Decimal(0), Decimal(0)
    return balance.posted, balance.held, balance.available
