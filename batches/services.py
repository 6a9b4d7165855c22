"""Writes for bulk CSV sends: upload (streaming validation, a preview), confirm (one funds hold per currency for
the whole batch), chunked order creation by workers, cancel, and re-queueing batches a crashed worker left.

Chunks run one at a time per batch (each locks the batch row) in file order, each in one transaction that
creates the chunk's orders and rewards, moves exactly their charges from the batch hold to per-reward holds and
marks the rows done. A chunk that dies rolls back whole; a chunk that runs twice finds its rows already done.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.errors import ApplicationError, NotFoundError
from core.money import format_amount

from .csvfile import FileDigest, RowValidator, ValidRow, decoded_lines, file_error, header_indexes
from .models import (
    BATCH_ACTIVE_STATES,
    BATCH_SENT_STATES,
    Batch,
    BatchHold,
    BatchRow,
    BatchRowError,
    BatchRowStatus,
    BatchStatus,
)

logger = logging.getLogger(__name__)

CHUNK = 5000  # rows per chunk transaction: ~0.4 s, ~20 MB peak (bench/bulk.py; measured below)
COPY_ROWS = 5000  # valid rows buffered between COPYs during an upload: ~2 MB
ERRORS_IN_PROBLEM = 20  # row errors listed in a refusal of a file without a single valid row


class _RowSink:
    """Buffers validated rows and row errors of an upload and writes them with COPY (the fastest load path)."""

    def __init__(self, batch: Batch) -> None:
        self.batch_id = str(batch.id)
        self.rows: list[ValidRow] = []
        self.errors: list[tuple[int, str, str]] = []
        self.first_errors: list[tuple[int, str, str]] = []

    def add_row(self, row: ValidRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= COPY_ROWS:
            self.flush()

    def add_errors(self, row_number: int, errors: list[tuple[str, str]]) -> None:
        for column, message in errors:
            item = (row_number, column, message[:300])
            self.errors.append(item)
            if len(self.first_errors) < ERRORS_IN_PROBLEM:
                self.first_errors.append(item)
        if len(self.errors) >= COPY_ROWS:
            self.flush()

    def flush(self) -> None:
        import json

        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor: COPY needs it
            if self.rows:
                columns = "batch_id, row_number, external_id, currency, charge, data, status, failure_reason"
                with raw.copy(f"COPY {BatchRow._meta.db_table} ({columns}) FROM STDIN") as copy:
                    for row in self.rows:
                        copy.write_row(
                            (self.batch_id, row.row_number, row.external_id, row.currency, row.charge,
                             json.dumps(row.data, separators=(",", ":")), BatchRowStatus.PENDING, "")
                        )  # fmt: skip
            if self.errors:
                with raw.copy(
                    f'COPY {BatchRowError._meta.db_table} (batch_id, row_number, "column", message) FROM STDIN'
                ) as copy:
                    for row_number, column, message in self.errors:
                        copy.write_row((self.batch_id, row_number, column, message))
        self.rows = []
        self.errors = []


def batch_upload(
    *,
    file: Iterable[bytes],
    file_name: str = "",
    size: int | None = None,
    dry_run: bool = True,
    program_slug: str | None = None,
    name: str = "",
    force: bool = False,
    api_key_id: str = "",
    created_by_email: str = "",
) -> Batch:
    """Read and validate a bulk CSV (lines of bytes), row by row; store its valid rows and row errors.

    Returns the batch `validated` (a preview: cost per currency, row errors), or, with dry_run=False, already
    confirmed (funds held, workers queued). A file that cannot be read (encoding, header, size, no valid row)
    or a confirmed duplicate of it (unless `force`) is refused with a problem and nothing is stored.
    """
    max_bytes = settings.BATCH_MAX_FILE_BYTES
    if size is not None and size > max_bytes:
        raise file_error(
            f"The file is {size} bytes; at most {max_bytes} are accepted.", code="file_too_large", status=413
        )
    if size == 0:
        raise file_error("The file is empty: it needs a header row and at least one row.", code="empty_file")
    started = time.monotonic()
    with transaction.atomic():
        program = None
        if program_slug:
            from programs.selectors import program_get

            program = program_get(slug=program_slug)
        batch = Batch.objects.create(
            name=(name or file_name)[:200],
            status=BatchStatus.VALIDATING,
            program=program,
            file_name=file_name[:255],
            allow_duplicate=force,
            api_key_id=api_key_id,
            created_by_email=created_by_email,
        )
        digest = FileDigest()
        reader = csv.reader(decoded_lines(file, digest), strict=True)
        sink = _RowSink(batch)
        rows = valid = errored = 0
        totals: dict[str, Decimal] = defaultdict(Decimal)
        max_rows = settings.BATCH_MAX_ROWS
        try:
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise file_error("The file is empty: it needs a header row and at least one row.", code="empty_file")
            indexes = list(header_indexes(header).items())
            width = len(header)
            validator = RowValidator(program=program)
            record = 1  # spreadsheet numbering: the header is row 1
            for cells in reader:
                record += 1
                if not any(cells):
                    continue  # a blank line
                rows += 1
                if rows > max_rows:
                    raise file_error(
                        f"The file has more than {max_rows} rows; split it into several batches.",
                        code="too_many_rows",
                        line=reader.line_num,
                    )
                if len(cells) > width:
                    row, errors = None, [("", f"This row has {len(cells)} cells; the header has {width}.")]
                else:
                    count = len(cells)
                    row, errors = validator.validate({n: cells[i] for n, i in indexes if i < count}, record)
                if row is None:
                    errored += 1
                    sink.add_errors(record, errors)
                else:
                    valid += 1
                    totals[row.currency] += row.charge
                    sink.add_row(row)
        except csv.Error as exc:
            raise file_error(
                f"Line {reader.line_num} is not well-formed CSV: {exc}.", code="malformed_csv", line=reader.line_num
            ) from None
        if rows == 0:
            raise file_error("The file has a header but no rows.", code="empty_file")
        if valid == 0:
            raise ApplicationError(
                f"None of the {rows} row(s) can be sent; see `errors` (row number and column).",
                code="no_valid_rows",
                errors={f"rows[{n}].{column or 'row'}": [message] for n, column, message in sink.first_errors},
                title="No valid rows",
            )
        sink.flush()
        sha = digest.sha256.hexdigest()
        earlier = (
            Batch.objects.filter(file_sha256=sha)
            .exclude(pk=batch.pk)
            .exclude(status=BatchStatus.CANCELED)
            .order_by("-created_at")
            .values_list("id", "status")
        )
        for earlier_id, earlier_status in earlier[:20]:
            if earlier_status in BATCH_SENT_STATES and not force:
                raise _duplicate_error(earlier_id)
            batch.duplicate_of = batch.duplicate_of or earlier_id
        batch.file_sha256 = sha
        batch.file_bytes = digest.bytes
        batch.rows, batch.valid_rows, batch.error_rows = rows, valid, errored
        batch.total_cost = {currency: format_amount(totals[currency], currency) for currency in sorted(totals)}
        batch.status = BatchStatus.VALIDATED
        batch.save()
        if not dry_run:
            _confirm_locked(batch, force=force)
    logger.info(
        "batch uploaded",
        extra={"event": "batch.uploaded", "batch_id": str(batch.id), "rows": rows, "valid_rows": valid,
               "seconds": round(time.monotonic() - started, 3)},
    )  # fmt: skip
    return batch


def _duplicate_error(earlier_id: Any) -> ApplicationError:
    return ApplicationError(
        f"This file was already sent as batch {earlier_id}. Upload (or confirm) with force=true to send it again.",
        code="duplicate_file",
        status=409,
        errors={"file": [f"Same file as batch {earlier_id}."]},
        title="Duplicate file",
    )


def _lock(batch_id: Any) -> Batch:
    batch = Batch.objects.select_for_update(no_key=True).filter(pk=batch_id).first()
    if batch is None:
        raise NotFoundError("No such batch.")
    return batch


def batch_confirm(*, batch_id: Any, force: bool = False) -> Batch:
    """Hold the funds for every valid row at once (one hold per funding currency) and queue the workers.

    Refused with 402 insufficient_funds (nothing changed) when a currency's available funds do not cover it.
    Confirming a batch already confirmed (or further) changes nothing.
    """
    with transaction.atomic():
        return _confirm_locked(_lock(batch_id), force=force)


def _confirm_locked(batch: Batch, *, force: bool) -> Batch:
    from funds.services import funds_hold
    from orders.planning import program_budget_check

    if batch.status in BATCH_SENT_STATES:
        return batch
    if batch.status != BatchStatus.VALIDATED:
        raise ApplicationError(f"A {batch.status} batch cannot be confirmed.", code="invalid_state", status=409)
    if force:
        batch.allow_duplicate = True
    if not batch.allow_duplicate:
        earlier = (
            Batch.objects.filter(file_sha256=batch.file_sha256, status__in=BATCH_SENT_STATES)
            .exclude(pk=batch.pk)
            .values_list("id", flat=True)
            .first()
        )
        if earlier:
            raise _duplicate_error(earlier)
    for currency, amount in sorted(batch.total_cost.items()):
        program_budget_check(program=batch.program, currency=currency, amount=Decimal(amount))
        hold = funds_hold(
            currency=currency,
            amount=Decimal(amount),
            reference=f"batch:{batch.id}",
            description=f"Hold for bulk batch {batch.id} ({batch.valid_rows} rows)",
        )
        BatchHold.objects.create(batch=batch, currency=currency, hold=hold)
    now = timezone.now()
    batch.status = BatchStatus.CONFIRMED
    batch.confirmed_at = now
    batch.heartbeat_at = now
    batch.save(update_fields=["status", "confirmed_at", "heartbeat_at", "allow_duplicate"])
    batch_id = str(batch.id)
    transaction.on_commit(lambda: _enqueue(batch_id))
    logger.info("batch confirmed", extra={"event": "batch.confirmed", "batch_id": batch_id})
    return batch


def _enqueue(batch_id: str) -> None:
    from .tasks import batch_process_task

    try:
        batch_process_task.delay(batch_id)
    except Exception:  # a broker outage must not fail a committed confirm: the sweeper queues it later
        logger.exception("could not queue batch", extra={"event": "batch.enqueue_failed", "batch_id": batch_id})


def batch_process(*, batch_id: Any, max_seconds: float | None = None) -> str:
    """Create the batch's orders chunk after chunk until done or `max_seconds` pass.

    Returns "done" (batch finished), "more" (time is up, rows remain) or "idle" (not confirmed/processing).
    """
    deadline = time.monotonic() + (settings.BATCH_TASK_SECONDS if max_seconds is None else max_seconds)
    while True:
        outcome = batch_process_chunk(batch_id=batch_id)
        if outcome != "more" or time.monotonic() >= deadline:
            return outcome


def batch_process_chunk(*, batch_id: Any, chunk: int = CHUNK) -> str:
    """One chunk in one transaction: the next `chunk` rows become orders and rewards (or failed rows), their
    charges move from the batch hold to per-reward holds, progress advances. The last call finishes the batch."""
    from catalog.models import Product, ShippingMethod

    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update(no_key=True, of=("self",))
            .filter(pk=batch_id)
            .select_related("program")
            .first()
        )
        if batch is None or batch.status not in BATCH_ACTIVE_STATES:
            return "idle"
        rows = _chunk_rows(batch, chunk)
        if not rows:
            _finish(batch)
            return "done"
        holds = {item.currency: item.hold for item in BatchHold.objects.select_related("hold").filter(batch=batch)}
        product_ids = {row.product_id for row in rows}
        products = {
            str(p.id): p for p in Product.objects.select_related("brand", "supplier").filter(id__in=product_ids)
        }
        method_ids = {row.shipping_method_id for row in rows if row.shipping_method_id}
        methods = {str(m.id): m for m in ShippingMethod.objects.filter(id__in=method_ids)} if method_ids else {}
        groups: dict[tuple[str, str], list[tuple[_ChunkRow, Any]]] = defaultdict(list)
        failed: list[tuple[_ChunkRow, str]] = []
        for row in rows:
            product = products.get(row.product_id)
            if product is None or not product.can_be_ordered:
                name = product.name if product else row.product_id
                failed.append((row, f"{name} could no longer be ordered when this row was sent."))
                continue
            key = (row.order_type, row.currency)
            groups[key].append((row, _planned(row, product, methods, position=len(groups[key]))))
        links: list[tuple[int, str]] = []
        for (order_type, currency), items in groups.items():
            links.extend(_create_orders(batch, order_type, currency, items, holds[currency]))
        _mark_rows(links, failed)
        batch.status = BatchStatus.PROCESSING
        batch.cursor_row = rows[-1].row_number
        batch.rows_done += len(rows)
        batch.rows_failed += len(failed)
        batch.heartbeat_at = timezone.now()
        batch.save(update_fields=["status", "cursor_row", "rows_done", "rows_failed", "heartbeat_at"])
    return "more"


class _ChunkRow(NamedTuple):
    """A pending batch row with its normalised `data` (csvfile.RowValidator) spread into typed columns."""

    id: int
    row_number: int
    currency: str
    order_type: str
    product_id: str
    amount: Decimal
    face_currency: str
    delivery_method: str
    charge: Decimal
    fx_fee: Decimal
    recipient_name: str
    recipient_email: str | None
    recipient_phone: str | None
    message: str | None
    sender_name: str | None
    deliver_at: datetime | None
    fx_rate: str | None
    country: str | None
    shipping_method_id: str | None
    shipping: Decimal | None
    address: str | None  # JSON


# BatchRow.data's keys (csvfile.RowValidator), as _ChunkRow lists them, with their types: PostgreSQL unpacks them
# (jsonb_to_record), which costs less than decoding each row's JSON and parsing its amounts and dates in Python.
_ROW_DATA_COLUMNS = (
    "order_type text, product_id text, amount numeric, face_currency text, delivery_method text, charge numeric, "
    "fx_fee numeric, recipient_name text, recipient_email text, recipient_phone text, message text, "
    "sender_name text, deliver_at timestamptz, fx_rate text, country text, shipping_method_id text, "
    "shipping numeric, address jsonb"
)


def _chunk_rows(batch: Batch, chunk: int) -> list[_ChunkRow]:
    """The pending rows after the batch's cursor, in file order: those among the next `chunk` row numbers from
    the first one pending (fewer where the file had row errors).

    A range of row numbers, not `ORDER BY row_number LIMIT chunk`: right after an upload the table's statistics
    do not know the batch's rows yet, and that plan read and sorted every remaining row of the batch for each
    chunk (quadratic in the file's size). The first pending row is one index probe.
    """
    table = BatchRow._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(row_number) FROM {table} WHERE batch_id = %s AND row_number > %s AND status = %s",
            [batch.id, batch.cursor_row, BatchRowStatus.PENDING],
        )
        first = cursor.fetchone()[0]
        if first is None:
            return []
        cursor.execute(
            f"SELECT r.id, r.row_number, r.currency, d.* FROM {table} AS r "
            f"CROSS JOIN LATERAL jsonb_to_record(r.data) AS d({_ROW_DATA_COLUMNS}) "
            "WHERE r.batch_id = %s AND r.row_number >= %s AND r.row_number < %s AND r.status = %s "
            "ORDER BY r.row_number",
            [batch.id, first, first + chunk, BatchRowStatus.PENDING],
        )
        return [_ChunkRow._make(values) for values in cursor.fetchall()]


def _planned(row: _ChunkRow, product: Any, methods: dict[str, Any], *, position: int) -> Any:
    from orders.planning import PlannedReward, RewardInput

    address = json.loads(row.address) if row.address else None
    spec = RewardInput(
        product_id=row.product_id,
        amount=row.amount,
        currency=row.face_currency,
        delivery_method=row.delivery_method,
        recipient={"name": row.recipient_name, "email": row.recipient_email or "", "phone": row.recipient_phone or ""},
        message=row.message or "",
        sender_name=row.sender_name or "",
        deliver_at=row.deliver_at,
        country=row.country,
        shipping_address=address,
        shipping_method_id=row.shipping_method_id,
    )
    return PlannedReward(
        position=position,
        spec=spec,
        product=product,
        delivery_method=row.delivery_method,
        charge=row.charge,
        fx_fee=row.fx_fee,
        shipping=row.shipping or Decimal(0),
        shipping_method=methods.get(row.shipping_method_id or ""),
        address=address,
    )


def _create_orders(
    batch: Batch, order_type: str, currency: str, items: list[tuple[_ChunkRow, Any]], hold: Any
) -> list[tuple[int, str]]:
    from orders.bulk import order_create_for_batch_rows

    rates = {row.fx_rate or "1" for row, _ in items}
    rewards = order_create_for_batch_rows(
        order_type=order_type,
        currency=currency,
        planned=[planned for _, planned in items],
        source_hold=hold,
        program=batch.program,
        fx_rate=Decimal(rates.pop()) if len(rates) == 1 else None,
        api_key_id=batch.api_key_id,
        created_by_email=batch.created_by_email,
    )
    return [(row.id, reward.id) for (row, _), reward in zip(items, rewards, strict=True)]


def _mark_rows(links: list[tuple[int, str]], failed: list[tuple[_ChunkRow, str]]) -> None:
    """Link each row to its reward, only if it has none: the row → reward link is set exactly once.

    The id range lets PostgreSQL read just the chunk's rows (an index range) and join them to the values;
    without it the plan scanned every row of every batch for each chunk."""
    table = BatchRow._meta.db_table
    with connection.cursor() as cursor:
        if links:
            ids = [i for i, _ in links]
            cursor.execute(
                f"UPDATE {table} AS r SET reward_id = v.reward_id, status = %s "
                "FROM unnest(%s::bigint[], %s::uuid[]) AS v(id, reward_id) "
                "WHERE r.id = v.id AND r.reward_id IS NULL AND r.status = %s AND r.id BETWEEN %s AND %s",
                [BatchRowStatus.CREATED, ids, [r for _, r in links], BatchRowStatus.PENDING, min(ids), max(ids)],
            )
            if cursor.rowcount != len(links):
                raise RuntimeError("batch rows already had rewards; the chunk is rolled back")
        if failed:
            cursor.execute(
                f"UPDATE {table} AS r SET status = %s, failure_reason = v.reason "
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, reason) WHERE r.id = v.id AND r.status = %s "
                "AND r.id BETWEEN %s AND %s",
                [BatchRowStatus.FAILED, [row.id for row, _ in failed], [why[:300] for _, why in failed],
                 BatchRowStatus.PENDING, min(row.id for row, _ in failed), max(row.id for row, _ in failed)],
            )  # fmt: skip


def _release_holds(batch: Batch) -> None:
    from funds.models import HoldStatus
    from funds.services import funds_hold_release

    for item in BatchHold.objects.select_related("hold").filter(batch=batch).order_by("currency"):
        if item.hold.status == HoldStatus.PENDING:
            funds_hold_release(hold=item.hold)


def _finish(batch: Batch) -> None:
    from webhooks.services import event_emit

    from .selectors import batch_render

    _release_holds(batch)  # what failed rows (and rounding) did not use
    batch.status = (
        BatchStatus.FAILED if batch.valid_rows and batch.rows_failed >= batch.valid_rows else BatchStatus.COMPLETED
    )
    if batch.status == BatchStatus.FAILED:
        batch.failure_reason = "No row could be sent; see results.csv."
    batch.completed_at = batch.heartbeat_at = timezone.now()
    batch.save(update_fields=["status", "failure_reason", "completed_at", "heartbeat_at"])
    event_emit(type="batch.completed", data=batch_render(batch, balances={}))
    logger.info(
        "batch completed",
        extra={"event": "batch.completed", "batch_id": str(batch.id), "rows": batch.rows_done,
               "failed": batch.rows_failed},
    )  # fmt: skip


def batch_cancel(*, batch_id: Any) -> Batch:
    """Stop a batch: a preview is dropped; a confirmed or processing one sends no further rows and releases what
    they had held (rewards already created stay; cancel them through the orders API if needed)."""
    with transaction.atomic():
        batch = _lock(batch_id)
        if batch.status == BatchStatus.CANCELED:
            return batch
        if batch.status not in (BatchStatus.VALIDATED, *BATCH_ACTIVE_STATES):
            raise ApplicationError(f"A {batch.status} batch cannot be canceled.", code="invalid_state", status=409)
        BatchRow.objects.filter(batch=batch, status=BatchRowStatus.PENDING).update(status=BatchRowStatus.CANCELED)
        _release_holds(batch)
        batch.status = BatchStatus.CANCELED
        batch.completed_at = timezone.now()
        batch.save(update_fields=["status", "completed_at"])
    return batch


def batch_requeue_stale(*, stale_after: timedelta | None = None) -> list[str]:
    """Confirmed/processing batches of this schema with no chunk for `stale_after` (a worker died, or the queue
    message was lost): their heartbeat is bumped and their ids returned for re-queueing. Running a batch twice
    at once is harmless (chunks lock the batch), so erring early only costs a wasted task."""
    stale_after = stale_after if stale_after is not None else timedelta(seconds=settings.BATCH_STALE_SECONDS)
    now = timezone.now()
    with transaction.atomic():
        stale = list(
            Batch.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status__in=BATCH_ACTIVE_STATES, heartbeat_at__lt=now - stale_after)
            .values_list("id", flat=True)
        )
        if stale:
            Batch.objects.filter(pk__in=stale).update(heartbeat_at=now)
    return [str(pk) for pk in stale]
