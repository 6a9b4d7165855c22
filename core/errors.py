"""The one domain error type. Services raise it; the API turns it into problem+json in one place."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refusal the caller can act on: a stable `code`, an HTTP status, and whether retrying may help."""

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int = 422,
        retryable: bool = False,
        errors: dict[str, Any] | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.retryable = retryable
        self.errors = errors or {}
        self.title = title or code.replace("_", " ").capitalize()
        self.headers = headers or {}


class NotFoundError(ApplicationError):
    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(detail, code="not_found", status=404)
