"""Points awarded from a CSV through the bulk machinery (batches.kinds): one row per award, previewed with its
errors, confirmed with one funds hold for the whole file's value, then applied in chunks.

Columns: `person_external_id`, `points`, optional `reason` and `external_id` (a row's award is idempotent by
it; without one, by `batch:<batch id>:<row>`). A chunk of 500 rows is a dozen set-based statements: the
people's accounts (created when missing, then locked in id order), one points transaction, two entries and an
award per row, the balances, and one split of the batch hold into the awards' holds (COPY). Each award made
announces itself with a `points.awarded` event (the same body as a single award's, the person's balance after
it), written with it in the chunk's transaction, so a re-run chunk or a row already awarded emits none twice;
the batch ends with `batch.completed`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from batches.csvfile import FORMULA_PREFIXES, ValidRow
from batches.kinds import BatchKindHandler, batch_kind_register
from batches.models import BatchKind, BatchRow, BatchRowStatus
from core.bulk import copy_insert
from core.errors import ApplicationError
from core.text import control_character_error
from funds.services import funds_hold_split_many
from people.models import Person
from programs.models import Program

from . import ledger
from .models import PointsAccount, PointsAccountKind, PointsAward, PointsEntry, PointsTransaction
from .services import MAX_POINTS

if TYPE_CHECKING:
    from batches.models import Batch, BatchHold

COLUMNS = ["person_external_id", "points", "reason", "external_id"]
REQUIRED = ["person_external_id", "points"]
TEMPLATE_URL = "/api/v1/points/awards/import"


def register() -> None:
    batch_kind_register(
        BatchKind.POINTS,
        BatchKindHandler(columns=COLUMNS, required=REQUIRED, template=TEMPLATE_URL, validator=PointsRowValidator,
                         chunk=points_chunk_apply),
    )  # fmt: skip


class PointsRowValidator:
    """One row at a time; the people of the tenant are read once (external id → id, ~50 ms per 100k)."""

    def __init__(self, batch: Batch) -> None:
        program = batch.program
        if program is None or not program.has_points:
            message = "Choose a program with a points currency."
            raise ApplicationError(message, code="validation_error", errors={"program": [message]})
        self.program: Program = program
        self.people = dict(Person.objects.filter(status="active").values_list("external_id", "id"))
        self.seen: set[str] = set()

    def validate(self, cells: dict[str, str], row_number: int) -> tuple[ValidRow | None, list[tuple[str, str]]]:
        errors: list[tuple[str, str]] = []
        values = {name: (cells.get(name) or "").strip() for name in COLUMNS}
        for column, value in values.items():
            # Points are digits or refused for that (one message): "-50" is a negative number to the person
            # who typed it, and the range message below says what to write instead.
            if column != "points" and value.startswith(FORMULA_PREFIXES):
                errors.append((column, "Cells may not begin with a formula character (= + - @)."))
            elif control_character_error(value):
                errors.append((column, "Contains a control character."))
        person_id = self.people.get(values["person_external_id"])
        if person_id is None:
            errors.append(("person_external_id", "No active person has this id."))
        text = values["points"]
        points = int(text) if text.isascii() and text.isdigit() else 0
        if not 1 <= points <= MAX_POINTS:
            errors.append(("points", f"A whole number of points from 1 to {MAX_POINTS}."))
        if len(values["reason"]) > 300:
            errors.append(("reason", "At most 300 characters."))
        external_id = values["external_id"]
        if len(external_id) > 100:
            errors.append(("external_id", "At most 100 characters."))
        elif external_id and external_id in self.seen:
            errors.append(("external_id", "Used by an earlier row of this file."))
        self.seen.add(external_id)
        if errors:
            return None, errors
        data = {"person_id": str(person_id), "points": points, "reason": values["reason"], "external_id": external_id}
        worth = ledger.points_value(program=self.program, points=points)
        return ValidRow(row_number=row_number, external_id=external_id, currency=self.program.points_currency,
                        charge=worth, data=data), []  # fmt: skip


def points_chunk_apply(batch: Batch, chunk: int, holds: dict[str, BatchHold]) -> tuple[int, int, int] | None:
    rows = list(
        BatchRow.objects.filter(batch=batch, row_number__gt=batch.cursor_row, status=BatchRowStatus.PENDING)
        .order_by("row_number")
        .values_list("id", "row_number", "data")[:chunk]
    )
    if not rows:
        return None
    program = batch.program
    assert program is not None and program.points_per_unit
    last_row = rows[-1][1]
    external_ids = {
        data["external_id"] or f"batch:{batch.id}:{row_number}": row_id for row_id, row_number, data in rows
    }
    taken = set(PointsAward.objects.filter(external_id__in=list(external_ids)).values_list("external_id", flat=True))
    present = {str(pk) for pk in Person.objects.filter(pk__in={data["person_id"] for _, _, data in rows}).values_list(
        "pk", flat=True)}  # fmt: skip
    failed: dict[int, str] = {}
    todo: list[tuple[int, int, dict[str, Any], str]] = []
    for row_id, row_number, data in rows:
        external_id = data["external_id"] or f"batch:{batch.id}:{row_number}"
        if external_id in taken:
            failed[row_id] = "An award with this external_id exists already."
        elif data["person_id"] not in present:
            failed[row_id] = "This person was erased since the preview."
        else:
            todo.append((row_id, row_number, data, external_id))
    if todo:
        _award_rows(batch, program, todo, holds[program.points_currency])
    with connection.cursor() as cursor:
        table = BatchRow._meta.db_table
        done = [row_id for row_id, _, _, _ in todo]
        cursor.execute(f"UPDATE {table} SET status = %s WHERE id = ANY(%s)", [BatchRowStatus.CREATED, done])
        for reason in set(failed.values()):
            ids = [row_id for row_id, why in failed.items() if why == reason]
            cursor.execute(f"UPDATE {table} SET status = %s, failure_reason = %s WHERE id = ANY(%s)",
                           [BatchRowStatus.FAILED, reason, ids])  # fmt: skip
    return len(rows), len(failed), last_row


def _award_rows(
    batch: Batch, program: Program, todo: list[tuple[int, int, dict[str, Any], str]], batch_hold: BatchHold
) -> None:
    person_ids = sorted({data["person_id"] for _, _, data, _ in todo})
    table = PointsAccount._meta.db_table
    ids = ledger.account_ids(program=program, person_id=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (program_id, person_id, kind, balance, updated_at) "
            "SELECT %s, p, 'person', 0, now() FROM unnest(%s::uuid[]) AS p "
            "ON CONFLICT (program_id, person_id) WHERE kind = 'person' DO NOTHING",
            [program.pk, person_ids],
        )
        # The people's accounts locked in id order (the ledger's lock order: people's accounts, then the
        # program's, then the funds ledger), as an award does for one.
        cursor.execute(
            f"SELECT person_id, id, balance FROM {table} WHERE program_id = %s AND kind = 'person' "
            "AND person_id = ANY(%s) ORDER BY id FOR UPDATE",
            [program.pk, person_ids],
        )
        locked = cursor.fetchall()
    accounts = {str(person_id): account_id for person_id, account_id, _ in locked}
    balances = {str(person_id): int(balance) for person_id, _, balance in locked}  # running, for the events
    now = timezone.now()
    days = program.points_expire_after_days
    expires_at = now + timedelta(days=days) if days else None
    transactions: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    awards: list[tuple[Any, ...]] = []
    parts: list[tuple[str, str, Decimal]] = []
    credit: dict[int, int] = defaultdict(int)
    total_points = 0
    total_value = Decimal(0)
    reference = f"batch:{batch.id}"
    events: list[dict[str, Any]] = []
    for _row_id, _row_number, data, external_id in todo:
        points = int(data["points"])
        account_id = accounts[data["person_id"]]
        txn_id, award_id, hold_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        value = ledger.points_value(program=program, points=points)
        transactions.append((txn_id, "award", program.pk, data["person_id"], points, data["reason"][:300], reference))
        entries += [(txn_id, account_id, points), (txn_id, ids[PointsAccountKind.ISSUED], -points)]
        awards.append((award_id, external_id, txn_id, program.pk, data["person_id"], account_id, points, points,
                       hold_id, expires_at))  # fmt: skip
        parts.append((str(hold_id), f"points_award:{award_id}", value))
        credit[account_id] += points
        total_points += points
        total_value += value
        balances[data["person_id"]] += points
        events.append({
            "id": str(award_id), "external_id": external_id, "person_id": data["person_id"], "program": program.slug,
            "points": points, "remaining": points, "reason": data["reason"][:300],
            "expires_at": expires_at.isoformat() if expires_at else None, "created_at": now.isoformat(),
            "balance": balances[data["person_id"]],
        })  # fmt: skip
    # COPY, not INSERT: a chunk of 5,000 awards writes 20,000 rows (created_at is `now`, once per chunk).
    copy_insert(PointsTransaction, ["id", "kind", "program_id", "person_id", "points", "reason", "reference"],
                transactions)  # fmt: skip
    copy_insert(PointsEntry, ["transaction_id", "account_id", "points"], entries)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS a SET balance = a.balance + c.points, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS c(id, points) WHERE a.id = c.id",
            [list(credit), list(credit.values())],
        )
        cursor.execute(
            f"UPDATE {table} SET balance = balance - %s, updated_at = now() WHERE id = %s",
            [total_points, ids[PointsAccountKind.ISSUED]],
        )
    # Their holds come next, in this transaction (foreign keys are checked at commit).
    copy_insert(PointsAward, ["id", "external_id", "transaction_id", "program_id", "person_id", "account_id", "points",
                              "remaining", "hold_id", "expires_at"], awards)  # fmt: skip
    from webhooks.events import event_emit_many

    event_emit_many(type="points.awarded", datas=events)  # one per award, in the chunk's transaction
    funds_hold_split_many(hold=batch_hold.hold, parts=parts, total=total_value,
                          description=f"{len(parts)} points awards of batch {batch.id}")  # fmt: skip
