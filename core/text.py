"""Checks on free text that ends up in email headers, SMS bodies, claim pages and CSV files."""

from __future__ import annotations

import unicodedata

# Line and paragraph separators, and the bidirectional overrides and isolates that make "gpj.exe" read as
# "exe.jpg": invisible, and never needed in a name, a sender or a message.
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MESSAGE_ALLOWED = frozenset("\n\r\t")


def control_character_error(value: str, *, multiline: bool = False) -> str | None:
    """A readable refusal if `value` holds control characters, else None.

    A name or sender name ends up in an email header (a newline there is header injection, and the mail
    library refuses it only after the reward is paid for) and in an SMS: single line, no control characters.
    A message may have line breaks and tabs (`multiline`), nothing else.
    """
    allowed = _MESSAGE_ALLOWED if multiline else frozenset()
    for char in value:
        if char in allowed:
            continue
        if char in _INVISIBLE or unicodedata.category(char) == "Cc":
            if char in "\r\n":
                return "Must be a single line (no line breaks)."
            return f"Contains a control character (U+{ord(char):04X}); remove it."
    return None
