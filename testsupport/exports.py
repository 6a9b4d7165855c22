"""Reading a CSV download as a spreadsheet would, after checking what every export promises."""

from __future__ import annotations

import csv
import io


def csv_export_rows(response) -> list[list[str]]:
    """The rows of a CSV download, after checking what every export promises: UTF-8 `text/csv`, an attachment,
    and every field quoted (so no spreadsheet splits a field at a comma, a semicolon or a line break)."""
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    body = (b"".join(response.streaming_content) if response.streaming else response.content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(body)))
    requoted = io.StringIO()
    csv.writer(requoted, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    assert body == requoted.getvalue(), "every field is quoted, every line ends with CRLF"
    return rows
