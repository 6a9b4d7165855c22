"""Checks on free text that ends up in email headers, SMS bodies, claim pages and CSV files."""

from __future__ import annotations

import re
import unicodedata

# Line and paragraph separators, and the bidirectional overrides and isolates that make "gpj.exe" read as
# "exe.jpg": invisible, and never needed in a name, a sender or a message.
_INVISIBLE = "\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# The first character refused: a control character (Unicode category Cc is exactly U+0000-U+001F and
# U+007F-U+009F) or an invisible one; a message may also have line breaks and tabs. One regular expression
# instead of a category lookup per character: a bulk file checks three text fields in each of 100,000 rows.
_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
_REFUSED_IN_MESSAGES = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_INVISIBLE}]")


def control_character_error(value: str, *, multiline: bool = False) -> str | None:
    """A readable refusal if `value` holds control characters, else None.

    A name or sender name ends up in an email header (a newline there is header injection, and the mail
    library refuses it only after the reward is paid for) and in an SMS: single line, no control characters.
    A message may have line breaks and tabs (`multiline`), nothing else.
    """
    found = (_REFUSED_IN_MESSAGES if multiline else _REFUSED).search(value)
    if found is None:
        return None
    char = found.group()
    if char in "\r\n":
        return "Must be a single line (no line breaks)."
    return f"Contains a control character (U+{ord(char):04X}); remove it."


# Never in a display name: controls and line separators (a CR/LF would end the header) become spaces; format
# characters (bidi overrides that reverse what a mail client shows, zero-width ones) and unassigned ones go.
_SPACE_IN_DISPLAY_NAMES = {"Cc", "Zl", "Zp"}
_DROPPED_FROM_DISPLAY_NAMES = {"Cf", "Cs", "Co", "Cn"}
DISPLAY_PART_MAX = 60  # characters of the sender's name and of the tenant's name each


def header_text(text: str) -> str:
    """`text` made safe for an email header (a display name, a subject): what `control_character_error` refuses
    at the door, removed here from what was stored before it did, or comes from elsewhere (a tenant's name)."""
    kept = []
    for ch in text or "":
        category = unicodedata.category(ch)
        if category not in _DROPPED_FROM_DISPLAY_NAMES:
            kept.append(" " if category in _SPACE_IN_DISPLAY_NAMES else ch)
    return " ".join("".join(kept).split())[:DISPLAY_PART_MAX].strip()
