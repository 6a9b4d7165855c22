"""People import: a CSV of people upserted by external_id through the bulk machinery (upload, preview, per-row
errors, confirm, progress, errors.csv and results.csv are the batches'; this module is what differs).

A row whose external_id is new creates a person (name required); a known one updates that person: the cells
given change, empty cells leave the field as it is (clearing a field is a PATCH), `attributes.<name>` columns
set those keys and keep the others. Each chunk is two set-based statements (an UPDATE of the known people and
an INSERT of the new ones), in the chunk's transaction, and marks its rows done: a chunk that runs twice finds
nothing pending. An import announces itself once, with `batch.completed`, not with an event per person: per-row
`person.created` / `person.updated` events, even set-based (the chunk's people read back, rendered and written
with webhooks.events.event_emit_many), made applying 30,000 new people take 10.1 s instead of 1.0 s (bench/people.py
at 30k rows), so integrators re-read `GET /people` after `batch.completed` instead.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection

from core.text import control_character_error
from people.models import Person
from people.services import people_changed
from people.validation import PERSON_FIELDS, person_fields_clean

from .csvfile import FORMULA_PREFIXES, PHONE_FORMULA_PREFIXES, ValidRow
from .models import Batch, BatchRow, BatchRowStatus

PEOPLE_COLUMNS = [name for name in PERSON_FIELDS if name != "attributes"]
PEOPLE_REQUIRED_COLUMNS = ["external_id"]  # and name, for a person the file creates
ATTRIBUTE_PREFIX = "attributes."
PEOPLE_TEMPLATE_URL = "/api/v1/people/import/template.csv"
PEOPLE_TEMPLATE_ROWS = [
    ["emp-0042", "Siti Aminah", "siti@example.com", "+60123456789", "ms", "Asia/Kuala_Lumpur", "MY", "03-14",
     "2021-06-01", "Engineering", "lead@example.com", "active", "R&D"],
    ["emp-0043", "Jonas Weber", "jonas@example.com", "", "en", "Europe/Berlin", "DE", "1990-11-02", "2019-01-15",
     "Sales", "", "active", ""],
]  # fmt: skip
PEOPLE_TEMPLATE_HEADER = [*PEOPLE_COLUMNS, "attributes.cost_center"]
# jsonb_to_record's view of a row's data (what PersonRowValidator stores), for the chunk's two statements.
_DATA_COLUMNS = (
    "external_id text, name text, email text, phone text, locale text, timezone text, country text, "
    "birthday_month smallint, birthday_day smallint, birthday_year smallint, hire_date date, department text, "
    "manager_email text, attributes jsonb, status text"
)


class PersonRowValidator:
    """Validates one row of a people import at a time: people.validation's rules, plus create-or-update."""

    def __init__(self) -> None:
        # Which external_ids exist (one query, ~50 ms per 100k people): the preview says created or updated.
        self.known = set(Person.objects.values_list("external_id", flat=True))
        self.seen: set[str] = set()

    def validate(self, cells: dict[str, str], row_number: int) -> tuple[ValidRow | None, list[tuple[str, str]]]:
        errors: list[tuple[str, str]] = []
        for column, value in cells.items():
            prefixes = PHONE_FORMULA_PREFIXES if column == "phone" else FORMULA_PREFIXES
            if value and value.startswith(prefixes):
                errors.append((column, "Cells may not begin with a formula character (= + - @) or a tab or "
                                       "carriage return: spreadsheets would run them."))  # fmt: skip
        if errors:
            return None, errors
        external_id = cells.get("external_id", "").strip()
        creating = external_id not in self.known
        raw: dict[str, Any] = {
            name: value for name, value in cells.items() if name in PERSON_FIELDS and (creating or value.strip())
        }
        attributes = {}
        for column, value in cells.items():
            if column.startswith(ATTRIBUTE_PREFIX) and value.strip():
                attributes[column[len(ATTRIBUTE_PREFIX) :]] = value.strip()
        if attributes:
            raw["attributes"] = attributes
        values, problems = person_fields_clean(raw, creating=creating)
        for field, messages in problems.items():
            column = field
            if field == "attributes":
                column = next((c for c in cells if c.startswith(ATTRIBUTE_PREFIX)), field)
            errors.extend((column, message) for message in messages)
        if external_id and external_id in self.seen:
            errors.append(("external_id", "Used by an earlier row of this file."))
        self.seen.add(external_id)
        if errors:
            return None, errors
        for key, value in values.items():
            if isinstance(value, date):
                values[key] = value.isoformat()
            elif isinstance(value, str) and control_character_error(value):  # checked already; belt and braces
                return None, [(key, "Contains a control character.")]
        values["action"] = "create" if creating else "update"
        return ValidRow(row_number=row_number, external_id=external_id, currency="", charge=Decimal(0), data=values), []


def people_chunk_apply(*, batch: Batch, chunk: int) -> tuple[int, int, int] | None:
    """Apply the next `chunk` pending rows (in file order) in the caller's transaction: (rows handled, of them
    failed, last row number), or None when no row is pending. A row fails when its person was erased since the
    preview (an update with no one to update), or was created meanwhile without the name a new person needs."""
    rows_table = BatchRow._meta.db_table
    people_table = Person._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(row_number) FROM {rows_table} WHERE batch_id = %s AND row_number > %s AND status = %s",
            [batch.id, batch.cursor_row, BatchRowStatus.PENDING],
        )
        first = cursor.fetchone()[0]
        if first is None:
            return None
        selection = (
            f"FROM {rows_table} AS r CROSS JOIN LATERAL jsonb_to_record(r.data) AS d({_DATA_COLUMNS}) "
            "WHERE r.batch_id = %s AND r.row_number >= %s AND r.row_number < %s AND r.status = %s"
        )
        params = [batch.id, first, first + chunk, BatchRowStatus.PENDING]
        cursor.execute(f"SELECT r.id, r.row_number, d.external_id {selection}", params)
        pending = {row_id: (row_number, external_id) for row_id, row_number, external_id in cursor.fetchall()}
        # Known people first: the cells given replace theirs, attributes merge; `left_at` follows status.
        cursor.execute(
            f"UPDATE {people_table} AS p SET name = coalesce(d.name, p.name), email = coalesce(d.email, p.email), "
            "phone = coalesce(d.phone, p.phone), locale = coalesce(d.locale, p.locale), "
            "timezone = coalesce(d.timezone, p.timezone), country = coalesce(d.country, p.country), "
            "birthday_month = coalesce(d.birthday_month, p.birthday_month), "
            "birthday_day = coalesce(d.birthday_day, p.birthday_day), "
            "birthday_year = CASE WHEN d.birthday_month IS NULL THEN p.birthday_year ELSE d.birthday_year END, "
            "hire_date = coalesce(d.hire_date, p.hire_date), department = coalesce(d.department, p.department), "
            "manager_email = coalesce(d.manager_email, p.manager_email), "
            "attributes = p.attributes || coalesce(d.attributes, '{}'::jsonb), status = coalesce(d.status, p.status), "
            "left_at = CASE WHEN d.status IS NULL OR d.status = p.status THEN p.left_at "
            "WHEN d.status = 'left' THEN now() ELSE NULL END, updated_at = now() "
            f"{selection} AND p.external_id = d.external_id RETURNING r.id",
            params,
        )
        done = {row_id for (row_id,) in cursor.fetchall()}
        cursor.execute(
            f"INSERT INTO {people_table} (id, external_id, name, email, phone, locale, timezone, country, "
            "birthday_month, birthday_day, birthday_year, hire_date, department, manager_email, attributes, status, "
            "left_at, created_at, updated_at) "
            "SELECT gen_random_uuid(), d.external_id, d.name, coalesce(d.email, ''), coalesce(d.phone, ''), "
            "coalesce(d.locale, ''), coalesce(d.timezone, ''), coalesce(d.country, ''), d.birthday_month, "
            "d.birthday_day, d.birthday_year, d.hire_date, coalesce(d.department, ''), "
            "coalesce(d.manager_email, ''), coalesce(d.attributes, '{}'::jsonb), coalesce(d.status, 'active'), "
            "CASE WHEN d.status = 'left' THEN now() END, now(), now() "
            f"{selection} AND d.name IS NOT NULL AND NOT r.id = ANY(%s) "
            "ON CONFLICT (external_id) DO NOTHING RETURNING external_id",
            [*params, list(done)],
        )
        inserted = {external_id for (external_id,) in cursor.fetchall()}
        people_changed()
        done |= {row_id for row_id, (_, external_id) in pending.items() if external_id in inserted}
        failed = [row_id for row_id in pending if row_id not in done]
        cursor.execute(f"UPDATE {rows_table} SET status = %s WHERE id = ANY(%s)", [BatchRowStatus.CREATED, list(done)])
        if failed:
            cursor.execute(
                f"UPDATE {rows_table} SET status = %s, failure_reason = %s WHERE id = ANY(%s)",
                [BatchRowStatus.FAILED, "This person was erased, or added without a name, since the preview.",
                 failed],
            )  # fmt: skip
    return len(pending), len(failed), max(row_number for row_number, _ in pending.values())
