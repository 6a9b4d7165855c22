"""Asserting an API error as a client reads it: a problem+json body with its status and stable code."""

from __future__ import annotations

from typing import Any


def assert_problem(response, status: int | set[int], code: str | None = None, what: str = "") -> dict[str, Any]:
    """The response is `application/problem+json` with `status` (one, or any of a set) and, if given, `code`;
    returns the body. `what` names the request in the failure message."""
    prefix = f"{what}: " if what else ""
    statuses = status if isinstance(status, set) else {status}
    assert response.status_code in statuses, f"{prefix}{response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"] == "application/problem+json", f"{prefix}{response['Content-Type']}"
    body = response.json()
    assert body["status"] == response.status_code, f"{prefix}{body}"
    if code is not None:
        assert body["code"] == code, f"{prefix}{body}"
    return body
