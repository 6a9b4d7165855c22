"""Bulk CSV upload: the file read and validated row by row (csvfile), its valid rows and row errors stored with
COPY, the duplicate-file check, and the preview (cost per currency); with dry_run=False it is confirmed at once.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from core.errors import ApplicationError
from core.money import format_amount

from .csvfile import FileDigest, RowValidator, ValidRow, decoded_lines, file_error, header_indexes
from .kinds import KindRowValidator, batch_kind_handler
from .lifecycle import batch_confirm_locked, batch_transition, duplicate_file_error
from .models import BATCH_SENT_STATES, Batch, BatchKind, BatchRow, BatchRowError, BatchRowStatus, BatchStatus
from .people import ATTRIBUTE_PREFIX, PEOPLE_COLUMNS, PEOPLE_REQUIRED_COLUMNS, PEOPLE_TEMPLATE_URL, PersonRowValidator
from .xlsxfile import xlsx_csv_lines

logger = logging.getLogger(__name__)

COPY_ROWS = 5000  # valid rows buffered between COPYs during an upload: ~2 MB
ERRORS_IN_PROBLEM = 20  # row errors listed in a refusal of a file without a single valid row
# What an upload writes on its batch when it has read the file.
UPLOAD_FIELDS = [
    "file_sha256",
    "file_bytes",
    "header",
    "rows",
    "valid_rows",
    "error_rows",
    "total_cost",
    "duplicate_of",
    "summary",
]

# json.dumps with separators builds a new encoder on every call; a file's rows share this one.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


class _RowSink:
    """Buffers validated rows and row errors of an upload and writes them with COPY (the fastest load path)."""

    def __init__(self, batch: Batch) -> None:
        self.batch_id = str(batch.id)
        self.rows: list[ValidRow] = []
        self.errors: list[tuple[int, str, str, str | None]] = []
        self.first_errors: list[tuple[int, str, str]] = []

    def add_row(self, row: ValidRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= COPY_ROWS:
            self.flush()

    def add_errors(self, row_number: int, errors: list[tuple[str, str]], cells: list[str]) -> None:
        """The row's errors; its cells go with the first one (the error file gives them back as uploaded)."""
        for index, (column, message) in enumerate(errors):
            item = (row_number, column, message[:300])
            self.errors.append((*item, json.dumps(cells) if index == 0 else None))
            if len(self.first_errors) < ERRORS_IN_PROBLEM:
                self.first_errors.append(item)
        if len(self.errors) >= COPY_ROWS:
            self.flush()

    def flush(self) -> None:
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor: COPY needs it
            if self.rows:
                columns = "batch_id, row_number, external_id, currency, charge, data, status, failure_reason"
                with raw.copy(f"COPY {BatchRow._meta.db_table} ({columns}) FROM STDIN") as copy:
                    for row in self.rows:
                        copy.write_row(
                            (self.batch_id, row.row_number, row.external_id, row.currency, row.charge,
                             _compact_json(row.data), BatchRowStatus.PENDING, "")
                        )  # fmt: skip
            if self.errors:
                with raw.copy(
                    f'COPY {BatchRowError._meta.db_table} (batch_id, row_number, "column", message, cells) FROM STDIN'
                ) as copy:
                    for row_number, column, message, cells in self.errors:
                        copy.write_row((self.batch_id, row_number, column, message, cells))
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
    kind: str = BatchKind.REWARDS,
) -> Batch:
    """Read and validate a bulk CSV (lines of bytes), row by row; store its valid rows and row errors.

    Returns the batch `validated` (a preview: cost per currency, row errors), or, with dry_run=False, already
    confirmed (funds held, workers queued). A file that cannot be read (encoding, header, size, no valid row)
    or a confirmed duplicate of it (unless `force`) is refused with a problem and nothing is stored.
    """
    max_bytes = settings.BATCH_MAX_FILE_BYTES
    if file_name.lower().endswith(".xlsx"):
        file = xlsx_csv_lines(file, max_bytes=max_bytes)  # the same rows, read from the first worksheet
        size = None
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
            kind=kind,
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
        summary: dict[str, int] = {}
        max_rows = settings.BATCH_MAX_ROWS
        try:
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise file_error("The file is empty: it needs a header row and at least one row.", code="empty_file")
            validator: RowValidator | PersonRowValidator | KindRowValidator
            handler = batch_kind_handler(kind)
            if handler is not None:
                indexes = list(
                    header_indexes(
                        header, columns=handler.columns, required=handler.required, template=handler.template
                    ).items()
                )
                validator = handler.validator(batch)
            elif kind == BatchKind.PEOPLE:
                indexes = list(
                    header_indexes(
                        header,
                        columns=PEOPLE_COLUMNS,
                        required=PEOPLE_REQUIRED_COLUMNS,
                        prefixes=(ATTRIBUTE_PREFIX,),
                        template=PEOPLE_TEMPLATE_URL,
                    ).items()
                )
                validator = PersonRowValidator()
            else:
                indexes = list(header_indexes(header).items())
                validator = RowValidator(program=program)
            width = len(header)
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
                    sink.add_errors(record, errors, cells)
                else:
                    valid += 1
                    if row.currency:
                        totals[row.currency] += row.charge
                    else:  # a people import: nothing to pay, what it will do instead
                        summary[row.data["action"]] = summary.get(row.data["action"], 0) + 1
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
            # Importing the same people again is harmless (an upsert); sending the same rewards twice is not.
            if earlier_status in BATCH_SENT_STATES and not force and kind != BatchKind.PEOPLE:
                raise duplicate_file_error(earlier_id)
            batch.duplicate_of = batch.duplicate_of or earlier_id
        batch.file_sha256 = sha
        batch.file_bytes = digest.bytes
        batch.header = header
        batch.rows, batch.valid_rows, batch.error_rows = rows, valid, errored
        batch.total_cost = {currency: format_amount(totals[currency], currency) for currency in sorted(totals)}
        batch.summary = summary
        batch_transition(
            batch=batch,
            to=BatchStatus.VALIDATED,
            fields=UPLOAD_FIELDS,
        )
        if not dry_run:
            batch_confirm_locked(batch=batch, force=force)
    logger.info(
        "batch uploaded",
        extra={"event": "batch.uploaded", "batch_id": str(batch.id), "rows": rows, "valid_rows": valid,
               "seconds": round(time.monotonic() - started, 3)},
    )  # fmt: skip
    return batch
