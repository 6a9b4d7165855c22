"""Reads of the funds ledger: balances, history, and the invariant check used after every concurrency test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet

from core.errors import NotFoundError
from core.precompiled import Precompiled

from .models import AccountKind, DepositRequest, LedgerAccount, LedgerTransaction, LowBalanceAlertRecipient


@dataclass(frozen=True)
class Balance:
    currency: str
    posted: Decimal
    held: Decimal
    available: Decimal
    low_balance_threshold: Decimal | None


# Read by every order (funding currency, balance check): compiled once per process (core.precompiled).
_CASH_AND_HOLDS: Precompiled[LedgerAccount] = Precompiled(
    lambda: LedgerAccount.objects.filter(kind__in=[AccountKind.CASH, AccountKind.HOLDS]).order_by("currency"),
    markers=[],
)


def balance_list() -> list[Balance]:
    by_currency: dict[str, dict[str, LedgerAccount]] = {}
    for account in _CASH_AND_HOLDS.fetch():
        by_currency.setdefault(account.currency, {})[account.kind] = account
    balances = []
    for currency, accounts in by_currency.items():
        cash, holds = accounts[AccountKind.CASH], accounts[AccountKind.HOLDS]
        balances.append(
            Balance(
                currency=currency,
                posted=cash.balance + holds.balance,
                held=holds.balance,
                available=cash.balance,
                low_balance_threshold=cash.low_balance_threshold,
            )
        )
    return balances


def balance_get(*, currency: str) -> Balance | None:
    return next((b for b in balance_list() if b.currency == currency), None)


def transaction_list(*, kind: str | None = None, currency: str | None = None) -> QuerySet[LedgerTransaction]:
    qs = LedgerTransaction.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    if currency:
        qs = qs.filter(currency=currency.upper())
    return qs


def deposit_request_list() -> QuerySet[DepositRequest]:
    return DepositRequest.objects.all()


def low_balance_recipients() -> list[str]:
    return list(LowBalanceAlertRecipient.objects.values_list("email", flat=True))


def transaction_get(*, transaction_id: uuid.UUID | str) -> LedgerTransaction:
    txn = LedgerTransaction.objects.filter(pk=transaction_id).first()
    if txn is None:
        raise NotFoundError("No such transaction.")
    return txn


def ledger_invariant_violations() -> list[str]:
    """Everything wrong with the ledger in the current schema; empty when the books balance.

    All checks read one snapshot (REPEATABLE READ), so postings committed by workers meanwhile cannot make
    a consistent ledger look inconsistent.
    """
    from django.db import transaction

    if connection.in_atomic_block:
        return _ledger_invariant_violations()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _ledger_invariant_violations()


def _ledger_invariant_violations() -> list[str]:
    problems: list[str] = []
    account_table = LedgerAccount._meta.db_table
    entry_table = "funds_ledgerentry"
    txn_table = LedgerTransaction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.currency, a.kind, a.balance, COALESCE(SUM(e.amount), 0) FROM {account_table} a "
            f"LEFT JOIN {entry_table} e ON e.account_id = a.id "
            "GROUP BY a.id HAVING a.balance <> COALESCE(SUM(e.amount), 0)"
        )
        for currency, kind, balance, total in cursor.fetchall():
            problems.append(f"{currency}:{kind} balance {balance} != sum of entries {total}")
        cursor.execute(f"SELECT currency, kind, balance FROM {account_table} WHERE kind <> 'external' AND balance < 0")
        for currency, kind, balance in cursor.fetchall():
            problems.append(f"{currency}:{kind} is negative ({balance})")
        cursor.execute(
            f"SELECT t.id, SUM(e.amount) FROM {txn_table} t JOIN {entry_table} e ON e.transaction_id = t.id "
            "GROUP BY t.id HAVING SUM(e.amount) <> 0"
        )
        for txn_id, total in cursor.fetchall():
            problems.append(f"transaction {txn_id} entries sum to {total}")
        cursor.execute(
            "SELECT currency, COALESCE(SUM(amount), 0) FROM funds_hold WHERE status = 'pending' GROUP BY currency"
        )
        pending = dict(cursor.fetchall())
        cursor.execute(f"SELECT currency, balance FROM {account_table} WHERE kind = 'holds'")
        for currency, balance in cursor.fetchall():
            if pending.get(currency, Decimal(0)) != balance:
                problems.append(f"{currency}: pending holds {pending.get(currency, 0)} != holds account {balance}")
    return problems
