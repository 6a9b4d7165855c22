"""Set-based writes for bulk paths: rows COPYed into a model's table, bypassing model instances.

`bulk_create` builds a model instance per row and binds every value client-side (~45 µs a row for a 30-column
table, bench/bulk.py's profile); `COPY … FROM STDIN` streams plain tuples that psycopg's C code formats
(a few µs a row) while the server already inserts the previous buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models


def copy_insert(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` (tuples of database values in `columns` order, by field attname) into `model`'s table in the
    current schema and transaction; returns the number of rows written.

    Every concrete field not in `columns` gets its Python default, evaluated once for all rows (e.g.
    `created_at = now`), so the caller lists each field that needs a value per row (a UUID primary key first
    of all; an auto-increment one is left to the database). Values are what the database takes: str, int,
    Decimal, UUID, datetime, None; JSON as a `str`. No model `save()`, signals or `full_clean()`: the caller
    validated the rows.
    """
    given = set(columns)
    fields = model._meta.concrete_fields
    unknown = given - {field.attname for field in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no column(s) {sorted(unknown)}")
    # An auto-increment key is the database's to fill; any other field left out takes its default.
    rest = [f for f in fields if f.attname not in given and not isinstance(f, models.fields.AutoFieldMixin)]
    constants = tuple(_default(model, field) for field in rest)
    names = ", ".join(connection.ops.quote_name(field.column) for field in [*_fields(model, columns), *rest])
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: COPY needs it
        with raw.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN") as copy:
            write = copy.write_row
            if constants:
                for row in rows:
                    write((*row, *constants))
                    count += 1
            else:
                for row in rows:
                    write(row)
                    count += 1
    return count


def _fields(model: type[models.Model], columns: Sequence[str]) -> list[models.Field]:
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    return [by_attname[name] for name in columns]


def _default(model: type[models.Model], field: models.Field) -> Any:
    value = None if field.primary_key else field.get_default()  # "" for text fields without a default
    if value is None:
        if not field.null:
            raise ValueError(f"{model.__name__}.{field.attname} needs a value per row")
        return None
    if isinstance(field, models.JSONField):
        import json

        return json.dumps(value, separators=(",", ":"))
    return value
