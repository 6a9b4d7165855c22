"""Bulk files from spreadsheets: an XLSX upload read as the CSV lines the bulk pipeline already validates.

The first worksheet's rows become UTF-8 CSV lines (openpyxl, read-only, cached values not formulas), so an
XLSX file gets exactly the checks, limits, row numbers and error file a CSV gets. Numbers come back as
their shortest text ("25", "25.5"), dates as ISO 8601, empty cells as "".
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from .csvfile import file_error


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def xlsx_csv_lines(file: Iterable[bytes], *, max_bytes: int) -> Iterator[bytes]:
    """The workbook's first sheet as CSV lines (bytes, CRLF); refused (422/413) when it is not a workbook."""
    from openpyxl import load_workbook

    raw = bytearray()
    for chunk in file:
        raw += chunk
        if len(raw) > max_bytes:
            raise file_error(f"The file is larger than {max_bytes} bytes.", code="file_too_large", status=413)
    try:
        workbook = load_workbook(io.BytesIO(bytes(raw)), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise file_error("This is not an XLSX workbook: save it as .xlsx or as CSV UTF-8.") from None
    sheet = workbook.worksheets[0] if workbook.worksheets else None
    if sheet is None:
        raise file_error("The workbook has no worksheet.", code="empty_file")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in sheet.iter_rows(values_only=True):
        cells = [_text(value) for value in row]
        while cells and cells[-1] == "":
            cells.pop()  # spreadsheets pad rows to the widest one
        writer.writerow(cells)
        yield out.getvalue().encode("utf-8")
        out.seek(0)
        out.truncate()
    workbook.close()
