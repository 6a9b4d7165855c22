"""Checking a person's fields, as the API, the portal and the CSV import give them: one set of rules.

`person_fields_clean` turns raw values (strings, a dict of attributes) into model values and collects every
problem by field, so the API answers one 422 naming them all and the import reports them per row and column.
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from core.phone import E164_RE
from core.text import control_character_error

from .models import PersonStatus

# Every field a client may set, in the order the API documents them (the import's columns too).
PERSON_FIELDS = (
    "external_id",
    "name",
    "email",
    "phone",
    "locale",
    "timezone",
    "country",
    "birthday",
    "hire_date",
    "department",
    "manager_email",
    "attributes",
    "status",
)
TEXT_LIMITS = {"external_id": 100, "name": 200, "email": 254, "department": 100, "manager_email": 254}
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")  # a BCP 47 language tag: "en", "ms", "pt-BR"
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
BIRTHDAY_RE = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$", re.ASCII)  # "１２-01" is not a date here
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 8192  # as JSON: room for custom dates and fields, not for documents
_email_validator = EmailValidator()


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())  # ~600 names read from tzdata once per process (~5 ms)


def timezone_ok(name: str) -> bool:
    return name in _timezones()


def birthday_parse(text: str) -> tuple[int, int, int | None] | str:
    """(month, day, year or None) from `MM-DD` or `YYYY-MM-DD`, or why not. 02-29 without a year is a birthday."""
    match = BIRTHDAY_RE.match(text)
    if match is None:
        return "Use MM-DD, or YYYY-MM-DD when the year is known."
    year = int(match.group(1)) if match.group(1) else None
    month, day = int(match.group(2)), int(match.group(3))
    try:
        date(year if year is not None else 2000, month, day)  # 2000 is a leap year: 02-29 is a date
    except ValueError:
        return "Not a date of the calendar."
    if year is not None and not 1900 <= year <= date.today().year:
        return "The year must be between 1900 and this year."
    return month, day, year


def _date_parse(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return "Use YYYY-MM-DD."


def _attributes_clean(value: Any) -> dict[str, Any] | str:
    if not isinstance(value, dict):
        return "Give an object of names to values."
    if len(value) > MAX_ATTRIBUTES:
        return f"At most {MAX_ATTRIBUTES} attributes."
    for key, item in value.items():
        if not isinstance(key, str) or not ATTRIBUTE_KEY_RE.match(key):
            return f"{str(key)[:40]!r} is not an attribute name (letters, digits, _ . -; at most 64)."
        if not (item is None or isinstance(item, str | int | float | bool)):
            return f"The value of {key!r} must be text, a number, true/false or null."
        if isinstance(item, str) and control_character_error(item):
            return f"The value of {key!r} contains a control character."
    if len(json.dumps(value)) > MAX_ATTRIBUTES_BYTES:
        return f"At most {MAX_ATTRIBUTES_BYTES} bytes of attributes."
    return value


def person_fields_clean(raw: dict[str, Any], *, creating: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(model field values, errors by API field) for the fields present in `raw`. With `creating`, external_id
    and name are required. Blank text clears a field; None is taken as blank."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}

    def refuse(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name in ("external_id", "name"):
        if creating and not str(raw.get(name) or "").strip():
            refuse(name, "Required.")
    for name, value in raw.items():
        if name not in PERSON_FIELDS:
            continue
        if name == "attributes":
            attributes = _attributes_clean(value if value is not None else {})
            if isinstance(attributes, str):
                refuse(name, attributes)
            else:
                values["attributes"] = attributes
            continue
        if value is not None and not isinstance(value, str):
            refuse(name, "Give text.")
            continue
        text = (value or "").strip()
        if name in TEXT_LIMITS and len(text) > TEXT_LIMITS[name]:
            refuse(name, f"At most {TEXT_LIMITS[name]} characters.")
            continue
        if problem := control_character_error(text):
            refuse(name, problem)
            continue
        if name in ("external_id", "name"):
            if text:
                values[name] = text
            elif not creating:
                refuse(name, "May not be blank.")
        elif name in ("email", "manager_email"):
            text = text.lower()
            try:
                if text:
                    _email_validator(text)
                values[name] = text
            except ValidationError:
                refuse(name, "Not a valid email address.")
        elif name == "phone":
            if text and not E164_RE.match(text):
                refuse(name, "Use E.164 format, e.g. +14155550123.")
            else:
                values[name] = text
        elif name == "locale":
            if text and not LOCALE_RE.match(text):
                refuse(name, "Use a language code such as en or ms.")
            else:
                values[name] = text
        elif name == "timezone":
            if text and not timezone_ok(text):
                refuse(name, "Use an IANA time zone such as Asia/Kuala_Lumpur or Europe/Berlin.")
            else:
                values[name] = text
        elif name == "country":
            text = text.upper()
            if text and not COUNTRY_RE.match(text):
                refuse(name, "Use a two-letter country code (ISO 3166-1), e.g. MY.")
            else:
                values[name] = text
        elif name == "birthday":
            parsed = birthday_parse(text) if text else (None, None, None)
            if isinstance(parsed, str):
                refuse(name, parsed)
            else:
                values["birthday_month"], values["birthday_day"], values["birthday_year"] = parsed
        elif name == "hire_date":
            hired = _date_parse(text) if text else None
            if isinstance(hired, str):
                refuse(name, hired)
            else:
                values["hire_date"] = hired
        elif name == "department":
            values[name] = text
        elif name == "status":
            if not text:
                continue  # not given: a new person is active, a known one keeps theirs
            if text not in PersonStatus.values:
                refuse(name, f"Use one of {', '.join(PersonStatus.values)}.")
            else:
                values[name] = text
    return values, errors
