"""Writes to the funds ledger. Every posting is one transaction whose entries sum to zero.

Debits are conditional UPDATEs (`… WHERE balance + delta >= 0`), never read-then-write, and accounts are
locked in ACCOUNT_LOCK_ORDER so concurrent postings cannot deadlock.

What a person or the operator decides (a deposit, a deposit request and its approval, the low-balance alert)
records an audit row naming the `actor`, in the same transaction; postings that follow from orders do not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.bulk import insert_select, insert_together
from core.errors import ApplicationError
from core.money import format_amount, parse_amount, parse_currency

from .models import (
    ACCOUNT_LOCK_ORDER,
    AccountKind,
    Hold,
    HoldPostingAtCommit,
    HoldStatus,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LowBalanceAlertRecipient,
    TransactionKind,
)

logger = logging.getLogger(__name__)


class InsufficientFunds(ApplicationError):
    def __init__(self, currency: str, amount: Decimal) -> None:
        super().__init__(
            f"Available {currency} funds do not cover {format_amount(amount, currency)} {currency}.",
            code="insufficient_funds",
            status=402,
            title="Insufficient funds",
        )


class HoldRefusedAtCommit(Exception):
    """A hold posted at commit (`funds_hold(at_commit=True)`) was refused by the trigger, so the commit failed and
    the transaction rolled back: available funds did not cover it, or it would have crossed the low-balance
    threshold. The caller does its work again with the posting inside the transaction, which answers either
    case exactly as always (InsufficientFunds, or the hold and a balance.low event)."""


# SQLSTATEs raised by the trigger of funds/migrations/0005_hold_posting_at_commit.py.
REFUSED_AT_COMMIT = {"RPF01": "insufficient funds", "RPF02": "low-balance threshold crossed"}


@contextmanager
def holds_refused_at_commit() -> Iterator[None]:
    """Around the `transaction.atomic()` whose COMMIT applies holds posted at commit: a refusal there becomes
    HoldRefusedAtCommit (Django has already rolled the transaction back); any other error passes through."""
    try:
        yield
    except DatabaseError as exc:
        reason = REFUSED_AT_COMMIT.get(getattr(exc.__cause__, "sqlstate", None) or "")
        if reason is None:
            raise
        raise HoldRefusedAtCommit(reason) from exc


def _ensure_accounts(currency: str) -> None:
    with connection.cursor() as cursor:
        for kind in AccountKind.values:
            cursor.execute(
                f"INSERT INTO {LedgerAccount._meta.db_table} (currency, kind, balance, updated_at) "
                "VALUES (%s, %s, 0, now()) ON CONFLICT (currency, kind) DO NOTHING",
                [currency, kind],
            )


def _post(
    *,
    kind: str,
    currency: str,
    amount: Decimal,
    legs: dict[str, Decimal],
    description: str,
    reference: str,
    insert_first: Sequence[models.Model] = (),
) -> LedgerTransaction:
    """Apply signed `legs` (account kind → delta) atomically; raises InsufficientFunds if any would go < 0.

    Three kinds of statement: the transaction row (with `insert_first`, new rows the caller writes in the same
    round trip, e.g. the hold), one conditional UPDATE per leg in ACCOUNT_LOCK_ORDER, and the entries, written
    by the last leg's UPDATE statement: the account rows stay locked from the first UPDATE until commit, so
    the posting holds them for one round trip fewer than with a separate INSERT.
    """
    assert sum(legs.values()) == 0, "a ledger transaction must balance"
    txn = _transaction(kind=kind, currency=currency, amount=amount, description=description, reference=reference)
    insert_together(insert_first, [txn])
    postings = [(account_kind, legs[account_kind]) for account_kind in ACCOUNT_LOCK_ORDER if legs.get(account_kind)]
    table = LedgerAccount._meta.db_table
    update = (
        f"UPDATE {table} SET balance = balance + %s, updated_at = now() "
        "WHERE currency = %s AND kind = %s AND (kind = 'external' OR balance + %s >= 0) "
        "RETURNING id, balance, low_balance_threshold"
    )
    account_ids: list[int | None] = []
    with connection.cursor() as cursor:
        for index, (account_kind, delta) in enumerate(postings):
            params: list[Any] = [delta, currency, account_kind, delta]
            if index == len(postings) - 1:
                # Every leg's entry, in lock order (ids ascending as before); the last leg's account is the row
                # this UPDATE returns, and no row (refused) writes no entry.
                cursor.execute(
                    f"WITH account AS ({update}), entries AS ("
                    f"INSERT INTO {LedgerEntry._meta.db_table} (transaction_id, account_id, amount) "
                    "SELECT %s, coalesce(leg.account_id, account.id), leg.amount FROM account, "
                    "unnest(%s::bigint[], %s::numeric[]) WITH ORDINALITY AS leg(account_id, amount, n) ORDER BY leg.n"
                    ") SELECT id, balance, low_balance_threshold FROM account",
                    [*params, txn.id, [*account_ids, None], [delta for _, delta in postings]],
                )
            else:
                cursor.execute(update, params)
            row = cursor.fetchone()
            if row is None:
                raise InsufficientFunds(currency, amount)
            account_ids.append(row[0])
            if account_kind == AccountKind.CASH:
                txn.cash_after = (row[1], row[2])  # (balance, low_balance_threshold) as this posting left them
    return txn


def _transaction(*, kind: str, currency: str, amount: Decimal, description: str, reference: str) -> LedgerTransaction:
    return LedgerTransaction(
        kind=kind, currency=currency, amount=amount, description=description[:300], reference=reference
    )


def funds_deposit(
    *, currency: str, amount: object, description: str = "Deposit", reference: str = "", actor: Actor | None = None
) -> LedgerAccount:
    """Credit prepaid funds (operator action). Returns the cash (available) account. Audited as `funds.deposit`."""
    currency = parse_currency(currency)
    value = parse_amount(amount, currency)
    with transaction.atomic():
        txn = deposit_post(currency=currency, value=value, description=description, reference=reference)
        audit_action(
            actor=actor, action="funds.deposit", object_type="ledger_transaction", object_id=txn.id,
            data={"currency": currency, "amount": format_amount(value, currency), "reference": reference},
        )  # fmt: skip
    return LedgerAccount.objects.get(currency=currency, kind=AccountKind.CASH)


def deposit_post(*, currency: str, value: Decimal, description: str, reference: str) -> LedgerTransaction:
    """The deposit posting itself, for the two audited ways in (a deposit, an approved deposit request)."""
    with transaction.atomic():
        _ensure_accounts(currency)
        txn = _post(
            kind=TransactionKind.DEPOSIT,
            currency=currency,
            amount=value,
            legs={AccountKind.EXTERNAL: -value, AccountKind.CASH: value},
            description=description,
            reference=reference,
        )
        from funds import events

        events.on_deposit(currency=currency, amount=value)
    logger.info("funds deposited", extra={"event": "funds.deposit", "currency": currency, "amount": str(value)})
    return txn


def funds_hold(
    *,
    currency: str,
    amount: Decimal,
    reference: str,
    description: str = "",
    hold_id: uuid.UUID | None = None,
    at_commit: bool = False,
) -> Hold:
    """Earmark funds for an order; call inside the transaction that creates the order.

    `hold_id`: the id the caller's rows already reference (foreign keys are checked at commit).

    `at_commit`: the hold and its ledger transaction are written now, but the posting itself (the cash and holds
    UPDATEs and the entries) is applied by PostgreSQL during COMMIT (funds.models.HoldPostingAtCommit), so the
    tenant's cash row, which every order of the tenant updates, is locked for the commit alone. Only for a
    caller whose `transaction.atomic()` is the outermost one, wrapped in `holds_refused_at_commit()`: a refusal
    fails the commit and arrives as HoldRefusedAtCommit, not as InsufficientFunds, and a hold that would cross
    the low-balance threshold is refused too (its balance.low event is written by the posting in the transaction).
    """
    if amount <= 0:
        raise ApplicationError("A hold must be positive.", code="validation_error")
    description = description or f"Hold for {reference}"
    if at_commit:
        hold = Hold(id=hold_id or uuid.uuid4(), currency=currency, amount=amount, reference=reference)
        txn = _transaction(
            kind=TransactionKind.HOLD, currency=currency, amount=amount, description=description, reference=reference
        )
        posting = HoldPostingAtCommit(transaction_id=txn.id, currency=currency, amount=amount)
        insert_together([hold], [txn], [posting])  # one round trip; the posting's trigger fires at COMMIT
        return hold
    # No savepoint: a refused hold refuses the whole enclosing order, never just part of it.
    with transaction.atomic(savepoint=False):
        # The hold row first: the posting locks the account rows until commit, so nothing else comes after it
        # but the balance.low check, which reads the cash row the posting returned (no second read).
        hold = Hold(id=hold_id or uuid.uuid4(), currency=currency, amount=amount, reference=reference)
        txn = _post(
            kind=TransactionKind.HOLD,
            currency=currency,
            amount=amount,
            legs={AccountKind.CASH: -amount, AccountKind.HOLDS: amount},
            description=description,
            reference=reference,
            insert_first=[hold],  # one round trip for both rows
        )
        from funds import events

        balance, threshold = txn.cash_after
        events.on_available_decreased(currency=currency, balance=balance, threshold=threshold, delta=-amount)
    return hold


def _resolve(*, hold: Hold, to: str, legs: dict[str, Decimal], kind: str, description: str) -> Hold:
    with transaction.atomic():
        locked = Hold.objects.select_for_update().get(pk=hold.pk)
        if locked.status == to:
            return locked  # unchanged state: a no-op, so a retried task is harmless
        if locked.status != HoldStatus.PENDING:
            raise ApplicationError(
                f"Hold is already {locked.status}; it cannot become {to}.", code="invalid_state", status=409
            )
        _post(
            kind=kind,
            currency=locked.currency,
            amount=locked.amount,
            legs=legs,
            description=description,
            reference=locked.reference,
        )
        locked.status = to
        locked.resolved_at = timezone.now()
        locked.save(update_fields=["status", "resolved_at"])
    return locked


def funds_hold_capture(*, hold: Hold) -> Hold:
    """Fulfilment succeeded: the held funds are spent."""
    amount = hold.amount
    return _resolve(
        hold=hold,
        to=HoldStatus.CAPTURED,
        legs={AccountKind.HOLDS: -amount, AccountKind.SPENT: amount},
        kind=TransactionKind.CAPTURE,
        description=f"Capture for {hold.reference}",
    )


def funds_hold_capture_many(*, hold_ids: Sequence[uuid.UUID | str]) -> list[uuid.UUID]:
    """funds_hold_capture for a batch (the fulfilment drain), set-based: the same ledger as one capture per hold
    (a capture transaction each, with its hold's reference and two entries), but the holds locked with one
    statement, each account updated once per currency, and the rows written with COPY. Returns the ids of the
    holds this call captured: one already captured is skipped (a retried batch is harmless); a released one is
    refused (409), as one capture refuses it.
    """
    from core.bulk import copy_insert

    if not hold_ids:
        return []
    with transaction.atomic():
        locked = list(Hold.objects.select_for_update().filter(pk__in=hold_ids).order_by("pk"))
        refused = [hold for hold in locked if hold.status == HoldStatus.RELEASED]
        if refused:
            raise ApplicationError(
                f"Hold {refused[0].reference} is already released; it cannot become captured.",
                code="invalid_state",
                status=409,
            )
        pending = [hold for hold in locked if hold.status == HoldStatus.PENDING]
        if not pending:
            return []
        by_currency: dict[str, list[Hold]] = {}
        for hold in pending:
            by_currency.setdefault(hold.currency, []).append(hold)
        now = timezone.now()
        table = LedgerAccount._meta.db_table
        transactions: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        with connection.cursor() as cursor:
            for currency in sorted(by_currency):
                holds = by_currency[currency]
                total = sum((hold.amount for hold in holds), Decimal(0))
                accounts = {}
                for kind, delta in ((AccountKind.HOLDS, -total), (AccountKind.SPENT, total)):  # ACCOUNT_LOCK_ORDER
                    cursor.execute(
                        f"UPDATE {table} SET balance = balance + %s, updated_at = now() "
                        "WHERE currency = %s AND kind = %s AND balance + %s >= 0 RETURNING id",
                        [delta, currency, kind, delta],
                    )
                    row = cursor.fetchone()
                    if row is None:  # the holds account must cover its pending holds: a broken ledger, never funds
                        raise ApplicationError("The holds account does not cover its pending holds.", code="ledger")
                    accounts[kind] = row[0]
                for hold in holds:
                    txn_id = uuid.uuid4()
                    transactions.append((txn_id, TransactionKind.CAPTURE, currency, hold.amount,
                                         f"Capture for {hold.reference}"[:300], hold.reference, now))  # fmt: skip
                    entries.append((txn_id, accounts[AccountKind.HOLDS], -hold.amount))
                    entries.append((txn_id, accounts[AccountKind.SPENT], hold.amount))
        columns = ["id", "kind", "currency", "amount", "description", "reference", "created_at"]
        copy_insert(LedgerTransaction, columns, transactions)
        copy_insert(LedgerEntry, ["transaction_id", "account_id", "amount"], entries)
        captured = [hold.pk for hold in pending]
        Hold.objects.filter(pk__in=captured).update(status=HoldStatus.CAPTURED, resolved_at=now)
    return captured


def funds_hold_release(*, hold: Hold) -> Hold:
    """Failure or cancellation: the held funds become available again."""
    amount = hold.amount
    return _resolve(
        hold=hold,
        to=HoldStatus.RELEASED,
        legs={AccountKind.HOLDS: -amount, AccountKind.CASH: amount},
        kind=TransactionKind.RELEASE,
        description=f"Release for {hold.reference}",
    )


def _hold_source_locked(hold: Hold, total: Decimal) -> Hold:
    """The pending hold `hold`, locked, if it can give `total`; else 409."""
    source = Hold.objects.select_for_update().get(pk=hold.pk)
    if source.status != HoldStatus.PENDING or source.amount < total:
        raise ApplicationError(
            f"Hold {source.reference} ({source.status}, {source.amount} {source.currency}) cannot give "
            f"{total} {source.currency}.",
            code="invalid_state",
            status=409,
        )
    return source


def _hold_source_move(*, hold: Hold, source: Hold, total: Decimal, count: int, description: str) -> None:
    """The two postings of a split (release `total` from the source, hold it again as `count` new holds) and the
    source's shrinking (released when nothing is left); `hold` (the caller's instance) follows."""
    text = description or f"{count} holds from {source.reference}"
    _post(kind=TransactionKind.RELEASE, currency=source.currency, amount=total,
          legs={AccountKind.HOLDS: -total, AccountKind.CASH: total}, description=f"Release for {text}",
          reference=source.reference)  # fmt: skip
    _post(kind=TransactionKind.HOLD, currency=source.currency, amount=total,
          legs={AccountKind.CASH: -total, AccountKind.HOLDS: total}, description=text,
          reference=source.reference)  # fmt: skip
    source.amount -= total
    fields = ["amount"]
    if source.amount == 0:
        source.status = HoldStatus.RELEASED
        source.resolved_at = timezone.now()
        fields += ["status", "resolved_at"]
    source.save(update_fields=fields)
    hold.amount, hold.status = source.amount, source.status


def funds_hold_release_part(*, hold: Hold, amount: Decimal, description: str = "") -> Hold:
    """Release `amount` of a pending hold back to available funds (holds → cash), in the caller's transaction;
    the hold shrinks by it and is released when nothing is left. What points spend or let expire of an award's
    hold. Refused (409) if the hold is not pending or holds less than `amount`."""
    if amount <= 0:
        raise ApplicationError("A release must be positive.", code="validation_error")
    with transaction.atomic(savepoint=False):
        source = _hold_source_locked(hold, amount)
        _post(kind=TransactionKind.RELEASE, currency=source.currency, amount=amount,
              legs={AccountKind.HOLDS: -amount, AccountKind.CASH: amount},
              description=description or f"Release for {source.reference}", reference=source.reference)  # fmt: skip
        source.amount -= amount
        fields = ["amount"]
        if source.amount == 0:
            source.status, source.resolved_at = HoldStatus.RELEASED, timezone.now()
            fields += ["status", "resolved_at"]
        source.save(update_fields=fields)
    return source


def funds_hold_split(*, hold: Hold, parts: list[tuple[str, Decimal]], description: str = "") -> list[Hold]:
    """Move part of a pending hold into new holds, one per (reference, amount) part (e.g. a bulk batch's hold
    into its rewards' holds), in the caller's transaction.

    Two postings that each balance: the parts' total is released from the hold (holds → cash) and at once held
    again (cash → holds) as the new holds, so `held` and `available` end where they started and pending holds
    still sum to the holds account. The source hold shrinks by the total (released when nothing is left).
    Refused (409) if the source is not pending or holds less than the parts need.
    """
    total = sum((amount for _, amount in parts), Decimal(0))
    if not parts:
        return []
    if any(amount <= 0 for _, amount in parts):
        raise ApplicationError("A hold must be positive.", code="validation_error")
    with transaction.atomic(savepoint=False):
        source = _hold_source_locked(hold, total)
        _hold_source_move(hold=hold, source=source, total=total, count=len(parts), description=description)
        return Hold.objects.bulk_create(
            [Hold(currency=source.currency, amount=amount, reference=reference) for reference, amount in parts]
        )


def funds_hold_split_many(
    *, hold: Hold, parts: list[tuple[str, str, Decimal]], total: Decimal, description: str = ""
) -> None:
    """funds_hold_split for thousands of parts (a bulk chunk): the same two postings and source update, but the
    new holds get the caller's ids (part = (UUID text, reference, amount), `total` their sum, computed by the caller
    as it builds the parts) and are written with one COPY instead of a model instance each. Rows that
    reference the new holds may be written before this call in the same transaction (foreign keys are
    checked at commit); calling it last keeps the ledger accounts locked only until commit.
    """
    if not parts:
        return
    if total <= 0 or total != sum((amount for _, _, amount in parts), Decimal(0)):
        raise ApplicationError("The parts' total does not match.", code="validation_error")
    with transaction.atomic(savepoint=False):
        source = _hold_source_locked(hold, total)
        from core.bulk import copy_insert

        copy_insert(
            Hold,
            ["id", "currency", "amount", "reference"],
            ((hold_id, source.currency, amount, reference) for hold_id, reference, amount in parts),
        )
        _hold_source_move(hold=hold, source=source, total=total, count=len(parts), description=description)


def funds_hold_split_select(
    *, hold: Hold, parts_sql: str, params: Sequence[Any], total: Decimal, count: int, description: str = ""
) -> None:
    """funds_hold_split_many with the parts read by the caller's SELECT (rows of hold id, reference, amount), in
    the caller's transaction, into one `INSERT … SELECT`: the new holds never pass through Python (a bulk chunk
    whose rewards were written by SQL). `total` and `count` are what the caller expects the query to give; any
    other sum or number fails the transaction. The ledger accounts stay locked from here until commit: call it
    last."""
    if count == 0:
        return
    if total <= 0:
        raise ApplicationError("The parts' total does not match.", code="validation_error")
    with transaction.atomic(savepoint=False):
        source = _hold_source_locked(hold, total)
        head, constants = insert_select(
            Hold, {"id": "p.id", "currency": "%s", "amount": "p.amount", "reference": "p.reference"}
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH parts AS ({head} FROM ({parts_sql}) AS p(id, reference, amount) RETURNING amount) "
                "SELECT count(*), coalesce(sum(amount), 0) FROM parts",
                [source.currency, *constants, *params],
            )
            written, amount = cursor.fetchone()
        if (written, amount) != (count, total):
            raise ApplicationError(f"{written} holds of {amount} written, {count} of {total} expected.", code="ledger")
        _hold_source_move(hold=hold, source=source, total=total, count=count, description=description)


def funds_refund(*, currency: str, amount: Decimal, reference: str, description: str = "") -> LedgerTransaction:
    """Return captured funds to the tenant (a voided code, a returned physical gift): once per `reference`.

    Idempotent in the ledger itself: a second refund with the same reference returns the first one and posts
    nothing (a partial unique index on refund references backs this under concurrency). A second refund with
    the same reference but another amount or currency is a programming error and raises.
    """
    if not reference:
        raise ValueError("a refund needs a reference (what is refunded), for its idempotency")
    with transaction.atomic():
        existing = _refund_get(reference)
        if existing is None:
            try:
                with transaction.atomic():  # savepoint: a concurrent twin's unique violation leaves ours usable
                    return _post(
                        kind=TransactionKind.REFUND,
                        currency=currency,
                        amount=amount,
                        legs={AccountKind.SPENT: -amount, AccountKind.CASH: amount},
                        description=description or f"Refund for {reference}",
                        reference=reference,
                    )
            except IntegrityError:
                existing = _refund_get(reference)
                if existing is None:
                    raise
        if existing.currency != currency or existing.amount != amount:
            raise ValueError(f"{reference} was refunded already with another amount or currency")
        return existing


def _refund_get(reference: str) -> LedgerTransaction | None:
    return LedgerTransaction.objects.filter(kind=TransactionKind.REFUND, reference=reference).order_by().first()


def funds_set_low_balance_threshold(
    *, currency: str, threshold: object | None, actor: Actor | None = None
) -> LedgerAccount:
    """Below this available balance the tenant is warned (None: never). Audited as `funds.low_balance_threshold`."""
    currency = parse_currency(currency)
    value = (
        None
        if threshold in (None, "")
        else parse_amount(threshold, currency, field="low_balance_threshold", allow_zero=True)
    )
    with transaction.atomic():
        _ensure_accounts(currency)
        LedgerAccount.objects.filter(currency=currency, kind=AccountKind.CASH).update(low_balance_threshold=value)
        shown = f"{format_amount(value, currency)} {currency}" if value is not None else "none"
        audit_action(
            actor=actor, action="funds.low_balance_threshold", object_type="currency", object_id=currency,
            data={"threshold": shown},
        )  # fmt: skip
    return LedgerAccount.objects.get(currency=currency, kind=AccountKind.CASH)


LOW_BALANCE_RECIPIENTS_MAX = 20


def low_balance_recipients_set(*, emails: list[str], actor: Actor | None = None) -> list[str]:
    """Replace who is emailed on a low balance; returns the stored list (lowercased, deduplicated, sorted).

    Audited as `funds.low_balance_recipients`.
    """
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    cleaned = sorted({e.strip().lower() for e in emails if e.strip()})
    bad = []
    for email in cleaned:
        try:
            validate_email(email)
        except ValidationError:
            bad.append(email)
    if bad:
        raise ApplicationError(
            "Not valid email addresses: " + ", ".join(bad),
            code="validation_error",
            errors={"emails": [f"Not an email address: {e}" for e in bad]},
        )
    if len(cleaned) > LOW_BALANCE_RECIPIENTS_MAX:
        raise ApplicationError(
            f"At most {LOW_BALANCE_RECIPIENTS_MAX} people.",
            code="validation_error",
            errors={"emails": [f"At most {LOW_BALANCE_RECIPIENTS_MAX} addresses."]},
        )
    with transaction.atomic():
        LowBalanceAlertRecipient.objects.exclude(email__in=cleaned).delete()
        existing = set(LowBalanceAlertRecipient.objects.values_list("email", flat=True))
        LowBalanceAlertRecipient.objects.bulk_create(
            [LowBalanceAlertRecipient(email=e) for e in cleaned if e not in existing]
        )
        audit_action(actor=actor, action="funds.low_balance_recipients", object_type="alert", data={"emails": cleaned})
    return cleaned
