"""CSV files we hand out (exports, manifests, batch results): every field quoted, no cell a spreadsheet runs.

A spreadsheet reads a cell that starts with = + - @ as a formula (OWASP "CSV injection"), and it picks the
field separator from the user's locale, not from the file: a field `x;=1+1` that is one quoted cell in a
comma-separated file is split at the `;` in a `;`-separated locale, and `=1+1` becomes a cell of its own,
quotes or not. So the rule is applied to every piece a spreadsheet might make a cell of: the field split at
`,` `;` tab, CR and LF. A piece whose first non-blank character is = + - @ gets an apostrophe in front of that
character (spreadsheets show it as text and hide the apostrophe), unless the piece is a plain number
(`-25.00`, `+14155550123`), which no spreadsheet evaluates. A field that starts with a tab or CR also gets a
leading apostrophe (some spreadsheets strip those before looking for a formula).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from django.http import HttpResponse, StreamingHttpResponse
from django_tenants.utils import tenant_context

from core.db import connection
from core.db_routing import reads_from_replica

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
# A formula character at the start of a piece: after the start of the field or a separator, past blanks.
_FORMULA_PIECE = re.compile(r"(^|[,;\t\r\n])([^\S\t\r\n]*)(?=[=+\-@])([^,;\t\r\n]*)")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def _neutralise(match: re.Match[str]) -> str:
    separator, blanks, piece = match.groups()
    if _PLAIN_NUMBER.fullmatch(piece.rstrip()):
        return match.group(0)
    return f"{separator}{blanks}'{piece}"


def csv_safe(value: object) -> str:
    """The field as text that no spreadsheet, in any locale, evaluates as a formula."""
    text = "" if value is None else str(value)
    text = _FORMULA_PIECE.sub(_neutralise, text)
    return "'" + text if text.startswith(("\t", "\r")) else text


class _Echo:
    """A file whose write() returns the line, so csv.writer yields lines instead of buffering them."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[object], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The header then each row as one CSV line (CRLF, every field quoted and made safe)."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    yield writer.writerow([csv_safe(cell) for cell in header])
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


def csv_text(header: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    """The whole file as one string, for small files built before the response (a template, a manifest)."""
    return "".join(csv_lines(header, rows))


def csv_response(
    *, filename: str, header: Iterable[object], rows: Iterable[Iterable[object]], streaming: bool = True
) -> HttpResponse | StreamingHttpResponse:
    """An attachment `filename` (ASCII letters, digits, `.-_`), streamed row by row by default.

    Rows may be a lazy queryset-backed generator: a streamed body is iterated by the server after every
    middleware returned (the connection is back on the public schema by then), so it is iterated inside the
    schema in use when the response was built (the live tenant or its sandbox twin).
    """
    if streaming:
        tenant = connection.tenant

        def stream() -> Iterator[str]:
            # An export may be read from a replica (DATABASE_REPLICA_URLS): the rows as of milliseconds ago.
            with tenant_context(tenant), reads_from_replica():
                yield from csv_lines(header, rows)

        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(stream(), content_type=CSV_CONTENT_TYPE)
    else:
        response = HttpResponse(csv_text(header, rows), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
