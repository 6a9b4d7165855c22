"""Postings to the points ledger: one transaction whose entries sum to zero, debits as conditional UPDATEs.

Lock order, everywhere: the person's account, then the program's account, then the funds ledger (which
locks its own accounts in its own order); so awards, redemptions, expiry and reversal never deadlock.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import connection

from core.errors import ApplicationError
from programs.models import Program

from .models import PointsAccount, PointsAccountKind, PointsEntry, PointsTransaction

LEDGER_QUANTUM = Decimal("0.0001")  # the funds ledger's four decimals


class InsufficientPoints(ApplicationError):
    def __init__(self, *, needed: int, balance: int) -> None:
        super().__init__(
            f"This needs {needed} points; the balance is {balance}.",
            code="insufficient_points",
            status=422,
            title="Not enough points",
            errors={"points": [f"Needs {needed} points; {balance} available."]},
        )


def points_value(*, program: Program, points: int) -> Decimal:
    """What `points` are worth in the program's funding currency: exact, as points_per_unit divides 10000."""
    assert program.points_per_unit, "the program has no points currency"
    return (Decimal(points) / Decimal(program.points_per_unit)).quantize(LEDGER_QUANTUM)


def account_ids(*, program: Program, person_id: uuid.UUID | str | None) -> dict[str, int]:
    """The program's accounts (and the person's, if given), created when missing: kind → id.

    Read first, and INSERT only what is missing: an INSERT … ON CONFLICT DO NOTHING that meets a row another
    transaction has updated waits for that transaction to end (to know whether the row still conflicts), so
    inserting every time queued each award behind the one before it on the program's `issued` account."""
    table = PointsAccount._meta.db_table
    wanted = {PointsAccountKind.ISSUED, PointsAccountKind.REDEEMED, PointsAccountKind.EXPIRED}
    if person_id is not None:
        wanted.add(PointsAccountKind.PERSON)
    select = f"SELECT kind, id FROM {table} WHERE program_id = %s AND (person_id IS NULL OR person_id = %s)"
    with connection.cursor() as cursor:
        cursor.execute(select, [program.pk, person_id])
        ids: dict[str, int] = dict(cursor.fetchall())
        if wanted <= ids.keys():
            return ids
        for kind in (PointsAccountKind.ISSUED, PointsAccountKind.REDEEMED, PointsAccountKind.EXPIRED):
            cursor.execute(
                f"INSERT INTO {table} (program_id, person_id, kind, balance, updated_at) "
                "VALUES (%s, NULL, %s, 0, now()) ON CONFLICT (program_id, kind) WHERE kind <> 'person' DO NOTHING",
                [program.pk, kind],
            )
        if person_id is not None:
            cursor.execute(
                f"INSERT INTO {table} (program_id, person_id, kind, balance, updated_at) "
                "VALUES (%s, %s, 'person', 0, now()) "
                "ON CONFLICT (program_id, person_id) WHERE kind = 'person' DO NOTHING",
                [program.pk, person_id],
            )
        cursor.execute(select, [program.pk, person_id])
        return dict(cursor.fetchall())


def post(
    *,
    kind: str,
    program: Program,
    person_id: uuid.UUID | str | None,
    points: int,
    legs: list[tuple[int, int]],
    reason: str = "",
    reference: str = "",
    balance_of_person: int | None = None,
) -> PointsTransaction:
    """Apply signed `legs` (account id, points), in the order given (the person's account first); a debit
    that would take an account other than `issued` below zero raises InsufficientPoints."""
    txn = transaction_new(kind=kind, program=program, person_id=person_id, points=points, reason=reason,
                          reference=reference)  # fmt: skip
    txn.save(force_insert=True)
    apply(txn=txn, legs=legs, balance_of_person=balance_of_person)
    return txn


def transaction_new(
    *, kind: str, program: Program, person_id: uuid.UUID | str | None, points: int, reason: str, reference: str
) -> PointsTransaction:
    """A points transaction, not saved yet (its id is set): for a caller that writes it with other rows."""
    return PointsTransaction(
        kind=kind, program=program, person_id=person_id, points=points, reason=reason[:300], reference=reference
    )


def apply(*, txn: PointsTransaction, legs: list[tuple[int, int]], balance_of_person: int | None = None) -> list[int]:
    """`post`'s account UPDATEs and entries for a transaction already written (or written later in the same
    database transaction: the foreign keys are checked at commit); the accounts' balances after it, per leg.
    The UPDATEs lock the accounts until commit: call it as late in the transaction as the lock order allows."""
    assert sum(delta for _, delta in legs) == 0, "a points transaction must balance"
    table = PointsAccount._meta.db_table
    balances = []
    with connection.cursor() as cursor:
        for account_id, delta in legs:
            cursor.execute(
                f"UPDATE {table} SET balance = balance + %s, updated_at = now() "
                "WHERE id = %s AND (kind = 'issued' OR balance + %s >= 0) RETURNING balance",
                [delta, account_id, delta],
            )
            row = cursor.fetchone()
            if row is None:
                raise InsufficientPoints(needed=-delta, balance=balance_of_person or 0)
            balances.append(int(row[0]))
    PointsEntry.objects.bulk_create(
        [PointsEntry(transaction=txn, account_id=account_id, points=delta) for account_id, delta in legs]
    )
    return balances
