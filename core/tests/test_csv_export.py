"""CSV exports: no field a spreadsheet could evaluate, in a comma- or a semicolon-separated locale."""

from __future__ import annotations

import csv
import io
import re

import pytest

from core.csv_export import csv_safe, csv_text

SEPARATORS = ",;\t\r\n"
FORMULA_START = "=+-@"


def spreadsheet_cells(field: str) -> list[str]:
    """The cells a spreadsheet may make of one field whatever separator its locale uses (quotes ignored)."""
    return [piece.lstrip() for piece in re.split(r"[,;\t\r\n]", field)]


def runs_as_formula(cell: str) -> bool:
    return cell[:1] != "" and cell[0] in FORMULA_START and not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)", cell.rstrip())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+Arlington", "'+Arlington"),
        ("-crm-1", "'-crm-1"),
        ("x;=1+1;", "x;'=1+1;"),  # one cell in a comma locale, a formula in a semicolon locale
        ("Ada,=cmd|' /C calc'!A0", "Ada,'=cmd|' /C calc'!A0"),
        ("a\t@x", "a\t'@x"),
        ("line one\n=2+2", "line one\n'=2+2"),
        ("Ada; =1+1", "Ada; '=1+1"),  # blanks before the formula character
        ("\t=1+1", "'\t'=1+1"),
        ("\rfoo", "'\rfoo"),
        ("-25.00", "-25.00"),  # a plain number is not a formula: amounts stay numbers
        ("+14155550123", "+14155550123"),
        ("refund;-25.00", "refund;-25.00"),
        ("Smith - Jones", "Smith - Jones"),  # a formula character inside a cell is harmless
        ("a=b, c@d.example", "a=b, c@d.example"),
        ("", ""),
        (None, ""),
        (25, "25"),
    ],
)
def test_csv_safe_neutralises_formulas_at_the_start_and_after_every_separator(value, expected):
    assert csv_safe(value) == expected


@pytest.mark.parametrize(
    "value",
    ["=1", "x;=1", "x,+1+cmd", "x\t-1-1", "x\n@a", "x\r=1", "a;;=b", "a;\u00a0=b", "-1;=1", "=1;=2,=3", "x; -y"],
)
def test_no_cell_of_a_neutralised_field_runs_in_any_locale(value):
    assert any(runs_as_formula(cell) for cell in spreadsheet_cells(value))
    assert not any(runs_as_formula(cell) for cell in spreadsheet_cells(csv_safe(value)))
    assert csv_safe(csv_safe(value)) == csv_safe(value)  # neutralising twice changes nothing more


def test_csv_text_quotes_every_field_and_round_trips():
    text = csv_text(["name", "amount"], [["x;=1+1;", "-25.00"], ['say "hi"', 3]])
    assert text == '"name","amount"\r\n"x;\'=1+1;","-25.00"\r\n"say ""hi""","3"\r\n'
    assert list(csv.reader(io.StringIO(text))) == [["name", "amount"], ["x;'=1+1;", "-25.00"], ['say "hi"', "3"]]
