"""Statements: the monthly statement per currency (opening balance, deposits, spend, refunds, closing) and the
running balance beside each ledger line, both read from the maintained per-day totals (LedgerDayStat), so
neither sums the whole ledger however long it grows.

The balance a statement speaks of is the *posted* balance (cash + holds: what the tenant has with us, held
or not). Holds and releases move money between cash and holds and leave it unchanged; deposits and refunds
raise it, captures (spend) lower it. By construction closing = opening + deposits - spend + refunds +
adjustments, and the closing balance of the current month is the ledger's posted balance to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.rollups import fold_deltas, try_fold_lock

from .models import AccountKind, LedgerDayStat, LedgerDayStatDelta, LedgerEntry, LedgerTransaction, TransactionKind

_FOLD_LOCK = 0x4C44_5354  # "LDST"


def ledger_days_compact() -> int:
    """Fold this schema's pending per-day ledger deltas in (beat, with the other rollups)."""
    with transaction.atomic():
        if not try_fold_lock(_FOLD_LOCK):
            return 0
        return fold_deltas(
            deltas=LedgerDayStatDelta._meta.db_table,
            rollup=LedgerDayStat._meta.db_table,
            keys=["day", "currency", "kind"],
            sums=["amount", "transactions"],
        )


def _day_sums(*, currency: str, since: date | None, before: date | None) -> dict[str, Decimal]:
    """Posted-balance movement per transaction kind over days [since, before) (None: unbounded)."""
    clauses, params = ["currency = %s"], [currency]
    if since is not None:
        clauses.append("day >= %s")
        params.append(since)  # type: ignore[arg-type]  # a date, bound by psycopg
    if before is not None:
        clauses.append("day < %s")
        params.append(before)  # type: ignore[arg-type]
    where = " AND ".join(clauses)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT kind, sum(amount) FROM (SELECT kind, amount FROM {LedgerDayStat._meta.db_table} WHERE {where} "
            f"UNION ALL SELECT kind, amount FROM {LedgerDayStatDelta._meta.db_table} WHERE {where}) AS s "
            "GROUP BY kind",
            params + params,
        )
        return {kind: amount for kind, amount in cursor.fetchall()}


def _month_sums(*, currency: str, first: date, after: date) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Posted-balance movement per kind before `first`, and over [first, after): one read."""
    tables = [LedgerDayStat._meta.db_table, LedgerDayStatDelta._meta.db_table]
    union = " UNION ALL ".join(f"SELECT day, kind, amount FROM {table} WHERE currency = %s" for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, coalesce(sum(amount) FILTER (WHERE day < %s), 0), "
            f"coalesce(sum(amount) FILTER (WHERE day >= %s AND day < %s), 0) FROM ({union}) AS s "
            "WHERE day < %s GROUP BY kind",
            [first, first, after, currency, currency, after],
        )
        rows = cursor.fetchall()
    return {kind: b for kind, b, _ in rows}, {kind: d for kind, _, d in rows}


@dataclass(frozen=True)
class MonthlyStatement:
    currency: str
    month: date  # its first day
    opening: Decimal
    deposits: Decimal
    spend: Decimal  # captured: a positive number that lowers the balance
    refunds: Decimal
    adjustments: Decimal  # signed
    closing: Decimal

    def as_dict(self) -> dict[str, Any]:
        from core.money import format_amount

        return {
            "currency": self.currency,
            "month": self.month.strftime("%Y-%m"),
            **{
                name: format_amount(getattr(self, name), self.currency)
                for name in ("opening", "deposits", "spend", "refunds", "adjustments", "closing")
            },
        }


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def monthly_statement(*, currency: str, month: date) -> MonthlyStatement:
    """The statement of `month` (any day in it; UTC days) in `currency`: two small reads of the day totals."""
    first = month_start(month)
    before, during = _month_sums(currency=currency, first=first, after=next_month(first))
    opening = sum(before.values(), Decimal(0))
    deposits = during.get(TransactionKind.DEPOSIT, Decimal(0))
    spend = -during.get(TransactionKind.CAPTURE, Decimal(0))
    refunds = during.get(TransactionKind.REFUND, Decimal(0))
    adjustments = during.get(TransactionKind.ADJUSTMENT, Decimal(0))
    # Holds and releases only move money between cash and holds: their posted movement is zero, but a kind the
    # statement does not name would still count in the closing balance (which must equal the ledger).
    other = sum(
        (amount for kind, amount in during.items() if kind not in {"deposit", "capture", "refund", "adjustment"}),
        Decimal(0),
    )
    closing = opening + deposits - spend + refunds + adjustments + other
    return MonthlyStatement(currency, first, opening, deposits, spend, refunds, adjustments + other, closing)


def statement_months(*, currency: str) -> list[date]:
    """The months (first days) from the first posting in `currency` to this month, newest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(day) FROM (SELECT min(day) AS day FROM {LedgerDayStat._meta.db_table} WHERE currency = %s "
            f"UNION ALL SELECT min(day) FROM {LedgerDayStatDelta._meta.db_table} WHERE currency = %s) AS s",
            [currency, currency],
        )
        row = cursor.fetchone()
    first = row[0] if row else None
    this_month = month_start(timezone.now().date())
    if first is None:
        return [this_month]
    months, current = [], month_start(first)
    while current <= this_month:
        months.append(current)
        current = next_month(current)
    return months[::-1]


def posted_deltas(transaction_ids: list[Any]) -> dict[Any, Decimal]:
    """How each transaction moved the posted balance (its cash and holds legs), one query."""
    rows = (
        LedgerEntry.objects.filter(
            transaction_id__in=transaction_ids, account__kind__in=[AccountKind.CASH, AccountKind.HOLDS]
        )
        .values_list("transaction_id", "amount")
        .order_by()
    )
    deltas: dict[Any, Decimal] = {}
    for transaction_id, amount in rows:
        deltas[transaction_id] = deltas.get(transaction_id, Decimal(0)) + amount
    return deltas


def running_balances(page: list[LedgerTransaction]) -> dict[Any, Decimal]:
    """The posted balance after each transaction of `page` (one currency, consecutive in the full newest-first
    order, i.e. not filtered by kind): the balance at the end of the day before the newest line, plus that
    day's movements up to it (the day totals and one range read of that day), then walked down the page."""
    if not page:
        return {}
    top = page[0]
    day = top.created_at.astimezone(UTC).date()
    day_start = datetime.combine(day, time.min, tzinfo=UTC)
    opening = sum(_day_sums(currency=top.currency, since=None, before=day).values(), Decimal(0))
    same_day = list(
        LedgerTransaction.objects.filter(
            currency=top.currency, created_at__gte=day_start, created_at__lte=top.created_at
        )
        .exclude(created_at=top.created_at, id__gt=top.id)
        .values_list("id", flat=True)
        .order_by()
    )
    deltas = posted_deltas(same_day + [t.id for t in page])
    balance = opening + sum((deltas.get(pk, Decimal(0)) for pk in same_day), Decimal(0))
    balances: dict[Any, Decimal] = {}
    for line in page:
        balances[line.id] = balance
        balance -= deltas.get(line.id, Decimal(0))
    return balances
