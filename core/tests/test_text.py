"""Free text refused at the door (core.text.control_character_error): what a name, a sender or a message may hold."""

from __future__ import annotations

import pytest

from core.text import control_character_error


@pytest.mark.parametrize(
    ("value", "multiline", "error"),
    [
        ("Ana María Đặng 王小明", False, None),
        ("zero\u200bwidth", False, None),  # a format character, not a control: kept (header_text drops it later)
        ("two\nlines", False, "Must be a single line (no line breaks)."),
        ("two\r\nlines\tand a tab", True, None),
        ("tab\tin a name", False, "Contains a control character (U+0009); remove it."),
        ("next line\u0085", True, "Contains a control character (U+0085); remove it."),  # C1 control
        ("delete\x7f", False, "Contains a control character (U+007F); remove it."),
        ("gpj.\u202eexe", True, "Contains a control character (U+202E); remove it."),  # bidi override
        ("para\u2029graph", True, "Contains a control character (U+2029); remove it."),
        ("bell\x07 then \n", True, "Contains a control character (U+0007); remove it."),  # the first one found
    ],
)
def test_control_characters_are_refused_with_a_readable_reason(value, multiline, error):
    assert control_character_error(value, multiline=multiline) == error
