"""XLSX downloads (openpyxl, write-only): the same header and rows as a CSV export, as one worksheet.

Text cells go through csv_export.csv_safe first: openpyxl writes a string beginning with "=" as a formula, and a
spreadsheet would run it. Numbers (int, Decimal) stay numbers, so totals can be summed where they land.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from decimal import Decimal

from django.http import HttpResponse
from openpyxl import Workbook

from .csv_export import csv_safe

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | Decimal):
        return value
    return csv_safe(value)


def xlsx_bytes(*, header: Iterable[object], rows: Iterable[Iterable[object]], title: str = "Sheet1") -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append([csv_safe(cell) for cell in header])
    for row in rows:
        sheet.append([_cell(cell) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_response(
    *, filename: str, header: Iterable[object], rows: Iterable[Iterable[object]], title: str = "Sheet1"
) -> HttpResponse:
    """An attachment `filename` (ASCII letters, digits, `.-_`), built whole (XLSX is a zip: it cannot stream)."""
    response = HttpResponse(xlsx_bytes(header=header, rows=rows, title=title), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
