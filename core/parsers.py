"""Request body parsers for the API: JSON with a nesting bound, so no body can crash a view (the DRF default).

Size: Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE before any parser reads it (RequestDataTooBig,
answered 413 problem+json by core/problems.py); this parser only sees bodies within that bound.
"""

from __future__ import annotations

import codecs
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

# No request of this API nests deeper than ~6 levels (an order's rewards -> a reward -> its recipient or
# address); 64 leaves room for any metadata a client attaches. Python's json module recurses once per level
# and raised RecursionError (a 500) near 1,000 levels; serializers and our error rendering recurse too.
MAX_JSON_DEPTH = 64


class JSONNestingTooDeep(ParseError):
    default_detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
    default_code = "malformed_request"


def json_depth_exceeds(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `data` (parsed JSON) nests arrays/objects more than `limit` deep; iterative, stops at the first."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: nesting over MAX_JSON_DEPTH (or past the interpreter's recursion limit) and an
    unknown charset are a 400 `malformed_request`, never a RecursionError or LookupError 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parsers.get_encoding(parser_context)
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            parse_constant = json.strict_constant if self.strict else None
            data = json.load(decoded_stream, parse_constant=parse_constant)
        except RecursionError:
            raise JSONNestingTooDeep() from None
        except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError(f"JSON parse error - {exc}") from None
        if isinstance(data, (dict, list)) and json_depth_exceeds(data):
            raise JSONNestingTooDeep()
        return data
