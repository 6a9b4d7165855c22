"""Reads of bulk batches: get, list, the API representation, and the errors / results CSV rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from core.db import custom_plans
from core.errors import NotFoundError
from orders.selectors import approval_render

from .models import Batch, BatchKind, BatchRow, BatchRowError, BatchRowStatus, BatchStatus

EXPORT_CHUNK = 2000  # rows fetched per round trip while streaming a CSV: ~1 MB


def batch_get(*, batch_id: Any) -> Batch:
    batch = Batch.objects.select_related("program").filter(pk=batch_id).first()
    if batch is None:
        raise NotFoundError("No such batch.")
    return batch


def batch_list(*, status: str | None = None, kind: str | None = None) -> QuerySet[Batch]:
    queryset = Batch.objects.select_related("program")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset


def available_funds() -> dict[str, str]:
    """Available funds per currency (one query), for previews."""
    from core.money import format_amount
    from funds.selectors import balance_list

    return {b.currency: format_amount(b.available, b.currency) for b in balance_list()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def batches_awaiting_approval() -> QuerySet[Batch]:
    """Batches waiting for a second person, oldest request first (the approvals queue)."""
    return Batch.objects.filter(approval_status="pending").order_by("approval_expires_at", "pk")


# Batches' delivery, in one aggregate over their rows' rewards (batch rows by their batch index, rewards by pk):
# ~40 ms for 100,000 rows on the bench machine, polled every few seconds by a page or a client.
_DELIVERY_SQL = """
SELECT br.batch_id,
       count(*) FILTER (WHERE r.status = ANY(%(done)s)),
       count(*) FILTER (WHERE r.status IN ('failed', 'delivery_failed')),
       count(*) FILTER (WHERE r.status = 'canceled'),
       min(r.delivered_at)
FROM {row} br JOIN {reward} r ON r.id = br.reward_id
WHERE br.batch_id = ANY(%(batches)s)
GROUP BY br.batch_id
"""


def batch_deliveries(batches: list[Batch]) -> dict[Any, dict[str, Any] | None]:
    """How far each batch's rewards have reached their recipients (one query for them all): delivered, failed,
    canceled and pending of the valid rows, and an estimate of the seconds left at the pace so far; None for a
    batch not confirmed, or one that sends nothing (a people import). Pending counts the rows not yet made into
    rewards too; failed, the rows that could not become one."""
    from django.db import connection
    from django.utils import timezone

    from orders.models import REWARD_DONE_STATES, Reward, RewardStatus

    confirmed = [b for b in batches if b.confirmed_at is not None and b.kind == BatchKind.REWARDS]
    counts: dict[Any, tuple[int, int, int, datetime | None]] = {}
    if confirmed:
        with connection.cursor() as cursor:
            cursor.execute(
                _DELIVERY_SQL.format(row=BatchRow._meta.db_table, reward=Reward._meta.db_table),
                {
                    "done": sorted(set(REWARD_DONE_STATES) - {RewardStatus.DELIVERY_FAILED}),
                    "batches": [batch.pk for batch in confirmed],
                },
            )
            counts = {row[0]: row[1:] for row in cursor.fetchall()}
    now = timezone.now()
    result: dict[Any, dict[str, Any] | None] = {batch.pk: None for batch in batches}
    for batch in confirmed:
        delivered, failed, canceled, first_delivered = counts.get(batch.pk, (0, 0, 0, None))
        total = batch.valid_rows
        failed += batch.rows_failed
        pending = max(total - delivered - failed - canceled, 0)
        eta: int | None = 0
        if pending:
            elapsed = (now - first_delivered).total_seconds() if first_delivered is not None else 0
            eta = round(pending * elapsed / delivered) if delivered and elapsed > 0 else None
        result[batch.pk] = {
            "total": total,
            "delivered": delivered,
            "failed": failed,
            "canceled": canceled,
            "pending": pending,
            "percent": 100 if total == 0 else int(100 * (total - pending) / total),
            "eta_seconds": eta,
        }
    return result


def batch_render(
    batch: Batch, *, balances: dict[str, str] | None = None, deliveries: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """The batch as the API shows it. `balances` (available per currency) and `deliveries` (batch_deliveries of a
    page) are looked up unless given."""
    from decimal import Decimal

    balances = available_funds() if balances is None else balances
    available = {currency: balances.get(currency, "0") for currency in batch.total_cost}
    base = f"/api/v1/batches/{batch.id}"
    total = batch.valid_rows
    return {
        "id": str(batch.id),
        "kind": batch.kind,
        "name": batch.name,
        "status": batch.status,
        "program": batch.program.slug if batch.program is not None else None,
        "file_name": batch.file_name,
        "file_sha256": batch.file_sha256,
        "duplicate_of": str(batch.duplicate_of) if batch.duplicate_of else None,
        "rows": batch.rows,
        "valid_rows": batch.valid_rows,
        "error_rows": batch.error_rows,
        "total_cost": dict(batch.total_cost),
        "people": {"create": 0, "update": 0, **batch.summary} if batch.kind == BatchKind.PEOPLE else None,
        "available_funds": available,
        "funds_sufficient": all(Decimal(available[c]) >= Decimal(v) for c, v in batch.total_cost.items()),
        "progress": {
            "done": batch.rows_done,
            "total": total,
            "failed": batch.rows_failed,
            "percent": 100 if total == 0 else int(100 * batch.rows_done / total),
        },
        "delivery": (batch_deliveries([batch]) if deliveries is None else deliveries)[batch.pk],
        "errors_url": f"{base}/errors.csv",
        "results_url": f"{base}/results.csv" if batch.status not in (BatchStatus.VALIDATING, BatchStatus.VALIDATED)
        else None,
        "failure_reason": batch.failure_reason or None,
        "approval": approval_render(batch),
        "created_at": _iso(batch.created_at),
        "confirmed_at": _iso(batch.confirmed_at),
        "completed_at": _iso(batch.completed_at),
    }  # fmt: skip


def batch_error_rows(*, batch: Batch) -> Iterator[tuple[int, str, str]]:
    """(row, column, message) in row order, streamed."""
    queryset = BatchRowError.objects.filter(batch=batch).order_by("row_number", "id")
    yield from queryset.values_list("row_number", "column", "message").iterator(chunk_size=EXPORT_CHUNK)


def batch_error_file(*, batch: Batch) -> tuple[list[str], Iterator[list[str]]]:
    """The error file: the uploaded header plus `error`, then each refused row's cells as uploaded plus what is
    wrong with it ("row 7: amount: …; recipient_email: …"). Fixed, it uploads again as it is (the bulk format
    ignores an `error` column). Batches uploaded before cells were kept give (row, column, message)."""
    if not batch.header:
        return ["row", "column", "message"], ([str(n), column, message] for n, column, message in
                                               batch_error_rows(batch=batch))  # fmt: skip
    width = len(batch.header)

    def rows() -> Iterator[list[str]]:
        queryset = (
            BatchRowError.objects.filter(batch=batch)
            .order_by("row_number", "id")
            .values_list("row_number", "column", "message", "cells")
        )
        current: int | None = None
        cells: list[str] = []
        problems: list[str] = []
        for row_number, column, message, row_cells in queryset.iterator(chunk_size=EXPORT_CHUNK):
            if row_number != current:
                if current is not None:
                    yield [*cells, f"row {current}: " + "; ".join(problems)]
                current, cells, problems = row_number, [], []
            if row_cells is not None:
                cells = (list(json.loads(row_cells) if isinstance(row_cells, str) else row_cells) + [""] * width)[
                    : max(width, len(row_cells))
                ]
            problems.append(f"{column}: {message}" if column else message)
        if current is not None:
            yield [*cells, f"row {current}: " + "; ".join(problems)]

    return [*batch.header, "error"], rows()


RESULT_HEADER = [
    "row", "recipient_name", "recipient_email", "external_id", "reward_id", "reference", "status", "claim_url",
    "reason",
]  # fmt: skip


def batch_result_file(*, batch: Batch, bearer: bool = False) -> tuple[list[str], Iterator[list[str]]]:
    """The results file: for rewards RESULT_HEADER (batch_result_rows); for other kinds (people, points imports)
    (row, reward_id, status, external_id, reason), a person's row saying created, updated or failed."""
    header = ["row", "reward_id", "status", "external_id", "reason"]
    if batch.kind == BatchKind.PEOPLE:
        return header, ([str(cell) for cell in row] for row in _people_result_rows(batch))
    if batch.kind != BatchKind.REWARDS:  # e.g. a points import: no recipient, no reward per row
        return header, ([str(cell) for cell in row] for row in _row_outcomes(batch))
    return RESULT_HEADER, batch_result_rows(batch=batch, bearer=bearer)


def _row_outcomes(batch: Batch) -> Iterator[tuple[int, str, str, str, str]]:
    """(row, reward id, status, external_id, reason): a row's status is its reward's, else the row's own."""
    queryset = (
        BatchRow.objects.filter(batch=batch)
        .order_by("row_number")
        .values_list("row_number", "reward_id", "reward__status", "status", "external_id", "failure_reason")
    )
    for row_number, reward_id, reward_status, row_status, external_id, reason in queryset.iterator(
        chunk_size=EXPORT_CHUNK
    ):
        yield row_number, str(reward_id or ""), reward_status or row_status, external_id, reason


def batch_result_rows(*, batch: Batch, bearer: bool = False) -> Iterator[list[str]]:
    """RESULT_HEADER's cells for every valid row, in row order, streamed. A row's status is its reward's
    (pending, delivered, …), or `failed` / `canceled` / `pending` when it has no reward. `claim_url` (a bearer
    link to the gift) only with `bearer`: for credentials that may send (a write key, a role that sends)."""
    from orders.selectors import claim_url_of

    queryset = (
        BatchRow.objects.filter(batch=batch)
        .order_by("row_number")
        .values_list(
            "row_number", "data", "external_id", "reward_id", "reward__recipient_name", "reward__recipient_email",
            "reward__reference", "reward__status", "status", "reward__claim_token_encrypted", "failure_reason",
        )
    )  # fmt: skip
    for (row_number, data, external_id, reward_id, name, email, reference, reward_status, row_status, token,
         reason) in queryset.iterator(chunk_size=EXPORT_CHUNK):  # fmt: skip
        data = json.loads(data) if isinstance(data, str) else (data or {})
        yield [
            str(row_number), name or data.get("recipient_name", ""), email or data.get("recipient_email", ""),
            external_id, str(reward_id or ""), reference or "", reward_status or row_status,
            (claim_url_of(token) or "") if bearer and token else "", reason,
        ]  # fmt: skip


def _people_result_rows(batch: Batch) -> Iterator[tuple[int, str, str, str, str]]:
    """A people import's rows: (row, "", created / updated / failed / pending, external_id, reason)."""
    from django.db.models.fields.json import KT

    queryset = (
        BatchRow.objects.filter(batch=batch)
        .order_by("row_number")
        .values_list("row_number", KT("data__action"), "status", "external_id", "failure_reason")
    )
    for row_number, action, status, external_id, reason in queryset.iterator(chunk_size=EXPORT_CHUNK):
        outcome = {"create": "created", "update": "updated"}[action] if status == BatchRowStatus.CREATED else status
        yield row_number, "", outcome, external_id, reason


BATCH_ROWS_PAGE = 50


def batch_rows_page(
    *, batch: Batch, q: str = "", status: str = "", after_row: int = 0, limit: int = BATCH_ROWS_PAGE
) -> list[BatchRow]:
    """A page of the batch's rows with their rewards, in file order after `after_row`: narrowed to rewards
    matching `q` (orders.search) and to a status (the reward's, or the row's while it has none)."""
    from orders.models import Reward
    from orders.search import reward_search

    # Planned for these words every time, as every search is (core.db.custom_plans): reward_search already reads
    # (its sample of the newest rewards) when it builds the queryset.
    with custom_plans(when=bool(q)):
        queryset = BatchRow.objects.filter(batch=batch, row_number__gt=after_row).select_related("reward")
        if q:
            queryset = queryset.filter(reward__in=reward_search(Reward.objects.all(), q).values("pk"))
        if status:
            queryset = queryset.filter(Q(reward__status=status) | Q(reward__isnull=True, status=status))
        return list(queryset.order_by("row_number")[:limit])
