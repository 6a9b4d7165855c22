"""Query-string parameters of list endpoints: an unknown value is a 422, never a silently empty page."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from rest_framework.request import Request

from core.errors import ApplicationError


def choice_param(request: Request, name: str, choices: Iterable[str]) -> str | None:
    """The value of `?name=` if it is one of `choices`, None when absent or empty; anything else is a 422
    problem naming the allowed values (the same rule as the enum in the OpenAPI schema)."""
    value = request.query_params.get(name)
    if not value:
        return None
    allowed = list(choices)
    if value not in allowed:
        raise ApplicationError(
            f"{name} must be one of {', '.join(allowed)}.",
            code="validation_error",
            errors={name: [f"Unknown {name}."]},
        )
    return value


def uuid_param(request: Request, name: str) -> uuid.UUID | None:
    """The value of `?name=` as a UUID, None when absent or empty; anything else is a 422 naming the parameter
    (the ORM raised a 500 on a malformed UUID)."""
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ApplicationError(
            f"{name} must be an id (a UUID).", code="validation_error", errors={name: ["Bad id."]}
        ) from None
