"""Hooks where funds changes announce themselves as webhook events (balance.credited, balance.low).

They run inside the posting's transaction (after its ledger entries are written, with the cash account row
still locked by that posting), so an event is recorded exactly when the change commits.
"""

from __future__ import annotations

from decimal import Decimal

from core.money import format_amount

from .models import AccountKind, LedgerAccount, LedgerEntry


def on_deposit(*, currency: str, amount: Decimal) -> None:
    from webhooks.services import event_emit

    cash = LedgerAccount.objects.get(currency=currency, kind=AccountKind.CASH)
    event_emit(
        type="balance.credited",
        data={
            "currency": currency,
            "amount": format_amount(amount, currency),
            "available": format_amount(cash.balance, currency),
        },
    )


def on_available_decreased(*, currency: str) -> None:
    """balance.low when this posting took available funds from at or above the threshold to below it.

    Only the crossing alerts, not every debit below the threshold. The posting's own entry is the newest
    on the cash account: the account row stays locked by the posting until commit, so no other posting
    can have added an entry since.
    """
    cash = LedgerAccount.objects.filter(currency=currency, kind=AccountKind.CASH).first()
    if cash is None or cash.low_balance_threshold is None:
        return
    threshold = cash.low_balance_threshold
    if cash.balance >= threshold:
        return
    last_entry = LedgerEntry.objects.filter(account=cash).order_by("-id").only("amount").first()
    before = cash.balance - (last_entry.amount if last_entry else Decimal(0))
    if before < threshold:
        return  # already below: alerted when it crossed
    from webhooks.services import event_emit

    event_emit(
        type="balance.low",
        data={
            "currency": currency,
            "available": format_amount(cash.balance, currency),
            "low_balance_threshold": format_amount(threshold, currency),
        },
    )
