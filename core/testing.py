"""Helpers for tests (importable from any test module; fixtures live in conftest.py)."""

from __future__ import annotations

import time

import pytest


def http_json(method: str, url: str, *, key: str, body: dict | None = None, headers: dict | None = None):
    """(status, json body, headers) over real HTTP."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


def csv_export_rows(response) -> list[list[str]]:
    """The rows of a CSV download, after checking what every export promises: UTF-8 `text/csv`, an attachment,
    and every field quoted (so no spreadsheet splits a field at a comma, a semicolon or a line break)."""
    import csv
    import io

    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    body = (b"".join(response.streaming_content) if response.streaming else response.content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(body)))
    requoted = io.StringIO()
    csv.writer(requoted, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    assert body == requoted.getvalue(), "every field is quoted, every line ends with CRLF"
    return rows
