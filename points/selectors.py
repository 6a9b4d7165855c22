"""Reads of the points ledger: a person's balances and history, liabilities per program, and the invariants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from programs.models import Program

from .ledger import points_value
from .models import PointsAccount, PointsAccountKind, PointsAward, PointsTransaction

EXPIRING_WITHIN = timedelta(days=30)  # "expiring soon" on the API and the points page


@dataclass(frozen=True)
class ProgramPoints:
    program: Program
    balance: int
    value: Decimal  # the balance's worth in the funding currency
    expiring: list[PointsAward]  # open awards expiring within EXPIRING_WITHIN, soonest first


def person_points(*, person_id: uuid.UUID | str) -> list[ProgramPoints]:
    """The person's balance in every program they hold an account in (three queries)."""
    accounts = list(
        PointsAccount.objects.filter(person_id=person_id, kind=PointsAccountKind.PERSON)
        .select_related("program")
        .order_by("program__name")
    )
    soon = timezone.now() + EXPIRING_WITHIN
    expiring: dict[int, list[PointsAward]] = {}
    for award in PointsAward.objects.filter(
        account__in=accounts, remaining__gt=0, expires_at__isnull=False, expires_at__lte=soon
    ).order_by("expires_at"):
        expiring.setdefault(award.account_id, []).append(award)
    return [
        ProgramPoints(
            program=account.program,
            balance=account.balance,
            value=points_value(program=account.program, points=account.balance),
            expiring=expiring.get(account.pk, []),
        )
        for account in accounts
    ]


def person_points_history(*, person_id: uuid.UUID | str, program: Program | None = None) -> QuerySet[PointsTransaction]:
    queryset = PointsTransaction.objects.filter(person_id=person_id).select_related("program")
    if program is not None:
        queryset = queryset.filter(program=program)
    return queryset


@dataclass(frozen=True)
class ProgramLiability:
    program: Program
    outstanding: int  # points people hold
    value: Decimal  # what the funds ledger holds for them
    issued: int
    redeemed: int
    expired: int  # expired or reversed


def points_liabilities() -> list[ProgramLiability]:
    """Per program with points: issued, redeemed, expired and the outstanding liability (what awards hold)."""
    rows: dict[int, dict[str, int]] = {}
    for program_id, kind, balance in PointsAccount.objects.exclude(kind=PointsAccountKind.PERSON).values_list(
        "program_id", "kind", "balance"
    ):
        rows.setdefault(program_id, {})[kind] = balance
    outstanding = dict(
        PointsAccount.objects.filter(kind=PointsAccountKind.PERSON)
        .values_list("program_id")
        .annotate(total=Sum("balance"))
        .values_list("program_id", "total")
    )
    programs = Program.objects.filter(pk__in=rows).order_by("name")
    return [
        ProgramLiability(
            program=program,
            outstanding=int(outstanding.get(program.pk) or 0),
            value=points_value(program=program, points=int(outstanding.get(program.pk) or 0)),
            issued=-rows[program.pk].get(PointsAccountKind.ISSUED, 0),
            redeemed=rows[program.pk].get(PointsAccountKind.REDEEMED, 0),
            expired=rows[program.pk].get(PointsAccountKind.EXPIRED, 0),
        )
        for program in programs
    ]


def awards_due(*, now: object = None) -> QuerySet[PointsAward]:
    return PointsAward.objects.filter(remaining__gt=0, expires_at__lte=now or timezone.now()).order_by("expires_at")


def points_invariant_violations() -> list[str]:
    """Everything wrong with the points ledger (and its tie to the funds holds) in the current schema, read on
    one REPEATABLE READ snapshot; empty when the books balance."""
    if connection.in_atomic_block:
        return _violations()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _violations()


def _violations() -> list[str]:
    problems: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.kind, a.balance, COALESCE(SUM(e.points), 0) FROM points_pointsaccount a "
            "LEFT JOIN points_pointsentry e ON e.account_id = a.id GROUP BY a.id "
            "HAVING a.balance <> COALESCE(SUM(e.points), 0)"
        )
        problems += [f"points account {i} ({k}) balance {b} != sum of entries {s}" for i, k, b, s in cursor.fetchall()]
        cursor.execute("SELECT id, kind, balance FROM points_pointsaccount WHERE kind <> 'issued' AND balance < 0")
        problems += [f"points account {i} ({k}) is negative ({b})" for i, k, b in cursor.fetchall()]
        cursor.execute(
            "SELECT t.id, SUM(e.points) FROM points_pointstransaction t JOIN points_pointsentry e "
            "ON e.transaction_id = t.id GROUP BY t.id HAVING SUM(e.points) <> 0"
        )
        problems += [f"points transaction {t} entries sum to {s}" for t, s in cursor.fetchall()]
        cursor.execute(
            "SELECT a.id, a.balance, COALESCE(SUM(w.remaining), 0) FROM points_pointsaccount a "
            "LEFT JOIN points_pointsaward w ON w.account_id = a.id WHERE a.kind = 'person' GROUP BY a.id "
            "HAVING a.balance <> COALESCE(SUM(w.remaining), 0)"
        )
        problems += [f"points account {i}: balance {b} != awards' remaining {r}" for i, b, r in cursor.fetchall()]
        # Each award's hold is pending for exactly the value of what is left of it, and released when nothing is.
        cursor.execute(
            "SELECT w.id, w.remaining, h.status, h.amount, p.points_per_unit FROM points_pointsaward w "
            "JOIN funds_hold h ON h.id = w.hold_id JOIN programs_program p ON p.id = w.program_id "
            "WHERE (w.remaining > 0) <> (h.status = 'pending') "
            "OR (w.remaining > 0 AND h.amount <> round(w.remaining::numeric / p.points_per_unit, 4))"
        )
        problems += [
            f"points award {i}: {r} points left but hold {s} for {a} (rate {ppu})"
            for i, r, s, a, ppu in cursor.fetchall()
        ]
    return problems


def points_report(*, since: datetime | None = None, until: datetime | None = None) -> list[dict[str, Any]]:
    """Per program with points: points issued, redeemed, expired and reversed in [since, until), and the
    outstanding liability now (points held and the money held for them). Two queries."""
    moved = PointsTransaction.objects.all()
    if since is not None:
        moved = moved.filter(created_at__gte=since)
    if until is not None:
        moved = moved.filter(created_at__lt=until)
    totals: dict[int, dict[str, int]] = {}
    for program_id, kind, points in (
        moved.values_list("program_id", "kind").annotate(total=Sum("points")).values_list("program_id", "kind", "total")
    ):
        totals.setdefault(program_id, {})[kind] = int(points or 0)
    rows = []
    for liability in points_liabilities():
        program = liability.program
        by_kind = totals.get(program.pk, {})
        rows.append({
            "program": program.slug, "name": program.points_name, "currency": program.points_currency,
            "issued": by_kind.get("award", 0), "redeemed": by_kind.get("redeem", 0),
            "expired": by_kind.get("expire", 0), "reversed": by_kind.get("reverse", 0),
            "outstanding": liability.outstanding, "liability": liability.value,
        })  # fmt: skip
    return rows


def points_balances(*, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each person's points across programs (one query), for lists of people; people without points are absent."""
    rows = (
        PointsAccount.objects.filter(person_id__in=person_ids, kind=PointsAccountKind.PERSON)
        .values_list("person_id")
        .annotate(total=Sum("balance"))
        .values_list("person_id", "total")
    )
    return {person_id: int(total or 0) for person_id, total in rows if person_id is not None}


def points_report_table(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """CSV/XLSX rows of the points report (GET /api/v1/reports/points, the portal's Reports page)."""
    columns = ["program", "name", "currency", "issued", "redeemed", "expired", "reversed", "outstanding", "liability"]
    return columns, [[Decimal(row[c]) if c == "liability" else row[c] for c in columns] for row in report["results"]]
