"""Cursor pagination for every list endpoint: stable under inserts, opaque `next`/`previous` links.

A cursor or limit the API did not hand out is a 400 `validation_error` naming the parameter: DRF answered
404 for some bad cursors, a first page for others (lenient base64), and a 500 when a well-formed cursor held
a position the ordering field cannot take (`p=2026` for a timestamp), as did `limit=²` (a Unicode digit).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from urllib import parse

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination
from rest_framework.pagination import Cursor

from core.errors import ApplicationError

_CURSOR_TOKENS = {"o", "r", "p"}  # offset, reverse, position: what DRF's encode_cursor writes
_LIMIT_DIGITS = 6  # a longer (ASCII) number is capped like any other over max_page_size, without int() on it


def _bad_param(name: str, detail: str, hint: str) -> ApplicationError:
    return ApplicationError(detail, code="validation_error", status=400, errors={name: [hint]})


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    def paginate_queryset(self, queryset, request, view=None):
        self._model = getattr(queryset, "model", None)  # to check a cursor's position against the ordering field
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        """`limit` must be a positive whole number in ASCII digits (capped at max_page_size); DRF silently
        ignored anything else, and int() took Unicode digits `isdigit()` let through only to fail on some."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        significant = raw.lstrip("0")
        if not (raw.isascii() and raw.isdigit()) or not significant:
            raise _bad_param(
                self.page_size_query_param,
                f"limit must be a whole number from 1 to {self.max_page_size}.",
                "Use a positive integer.",
            )
        if len(significant) > _LIMIT_DIGITS:
            return self.max_page_size
        return min(int(significant), self.max_page_size)

    def decode_cursor(self, request):
        """DRF's decode_cursor, strict: exact base64, only DRF's own tokens, and a position the ordering field
        accepts. An empty `cursor=` is the first page, as no cursor."""
        encoded = request.query_params.get(self.cursor_query_param)
        if not encoded:
            return None
        try:
            querystring = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(querystring, keep_blank_values=True, strict_parsing=True)
            if not tokens or set(tokens) - _CURSOR_TOKENS or any(len(values) != 1 for values in tokens.values()):
                raise ValueError("unexpected cursor tokens")
            offset = pagination._positive_int(tokens.get("o", ["0"])[0], cutoff=self.offset_cutoff)
            reverse = tokens.get("r", ["0"])[0]
            if reverse not in ("0", "1"):
                raise ValueError("bad direction")
            position = tokens.get("p", [None])[0]
            if position is not None:
                self._check_position(position)
        except (ValueError, TypeError, binascii.Error, DjangoValidationError):  # UnicodeError is a ValueError
            raise _bad_param(
                self.cursor_query_param,
                "cursor is not valid for this list; use the `next` or `previous` link of a page as it is.",
                "Unknown cursor.",
            ) from None
        return Cursor(offset=offset, reverse=reverse == "1", position=position)

    def _check_position(self, position: str) -> None:
        """Raise ValueError/ValidationError when the ordering field cannot hold `position` (the query would
        fail in the ORM or in PostgreSQL). An ordering on an annotation is not checked here."""
        if "\x00" in position:
            raise ValueError("NUL in cursor")
        if self._model is None:
            return
        try:  # paginate_queryset set self.ordering (a tuple) before decoding the cursor
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            return
        field.get_prep_value(field.to_python(position))

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
