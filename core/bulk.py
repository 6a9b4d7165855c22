"""Set-based writes for bulk paths: rows COPYed into a model's table, bypassing model instances; and new values
for many existing rows in one UPDATE (`rows_update`).

`bulk_create` builds a model instance per row and binds every value client-side (~45 µs a row for a 30-column
table, bench/bulk.py's profile); `COPY … FROM STDIN` streams plain tuples that psycopg's C code formats
(a few µs a row) while the server already inserts the previous buffer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django.db import connection, models
from django.db.models.expressions import DatabaseDefault


def copy_insert(model: type[models.Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` (tuples of database values in `columns` order, by field attname) into `model`'s table in the
    current schema and transaction; returns the number of rows written.

    Every concrete field not in `columns` gets its Python default, evaluated once for all rows (e.g.
    `created_at = now`), so the caller lists each field that needs a value per row (a UUID primary key first
    of all; an auto-increment one is left to the database). Values are what the database takes: str, int,
    Decimal, UUID, datetime, None; JSON as a `str`. No model `save()`, signals or `full_clean()`: the caller
    validated the rows.
    """
    rest = _defaulted(model, columns)
    constants = tuple(_default(model, field) for field in rest)
    # A concrete field always has a column (only a non-concrete one, e.g. a reverse relation, has None).
    names = ", ".join(connection.ops.quote_name(cast(str, f.column)) for f in [*_fields(model, columns), *rest])
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


def rows_update(model: type[models.Model], rows: Mapping[Any, Mapping[str, Any]]) -> int:
    """Write new values into existing rows of `model` in ONE statement; returns the rows updated.

    `rows` maps each row's primary key to the fields it changes (by attname) and their new values (as the fields
    take them: JSON as Python data). A row leaves out a field it does not change, which keeps what it holds (so
    does a None: this never writes a NULL). No `save()` or signals.

    `UPDATE … FROM jsonb_to_recordset(%s)`: the rows travel as one JSON document, one parameter, and the statement's
    text depends only on the model and the fields. Not one array per column (`unnest`, as the drains write their
    outcomes): psycopg escapes each element of a text array in Python, and for the ~1,600 stored events of a
    retention round (their JSON, ~3 KB each) that took 1.2-1.9 s of a ~6 s round under cProfile
    (bench/retention.py)."""
    if not rows:
        return 0
    names = sorted({name for values in rows.values() for name in values})
    fields = _fields(model, names)
    quote = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None  # every concrete model has one (django-stubs types it Optional)
    columns = [f"pk {pk.db_type(connection)}"]
    assignments = []
    for n, field in enumerate(fields):
        column = quote(cast(str, field.column))
        columns.append(f"c{n} {field.db_type(connection)}")  # a JSONField's is jsonb: its value goes in as it is
        assignments.append(f"{column} = COALESCE(v.c{n}, t.{column})")
    documents = []
    for key, values in rows.items():
        parts = [f'"pk": {json.dumps(_json_scalar(pk.get_db_prep_value(key, connection)))}']
        for n, (name, field) in enumerate(zip(names, fields, strict=True)):
            value = values.get(name)
            if value is None:
                continue
            if isinstance(field, models.JSONField):
                parts.append(f'"c{n}": {json.dumps(value, cls=field.encoder)}')
            else:
                parts.append(f'"c{n}": {json.dumps(_json_scalar(field.get_db_prep_save(value, connection)))}')
        documents.append("{" + ", ".join(parts) + "}")
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS t SET {', '.join(assignments)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({', '.join(columns)}) WHERE t.{quote(cast(str, pk.column))} = v.pk"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ["[" + ", ".join(documents) + "]"])
        updated: int = cursor.rowcount
    return updated


def _json_scalar(value: Any) -> Any:
    """A database value as JSON carries it for jsonb_to_recordset to read back as its column's type: a time in full
    ISO 8601 (DjangoJSONEncoder would cut it to milliseconds), a UUID or a Decimal as its text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def insert_select(model: type[models.Model], columns: dict[str, str]) -> tuple[str, list[Any]]:
    """The head of an `INSERT … SELECT` into `model`'s table: `INSERT INTO t (cols) SELECT exprs` where `columns`
    maps each given field (by attname) to its SQL expression over the caller's FROM clause, which the caller
    appends. Every other field gets what copy_insert gives it (its Python default, once for all rows, passed as
    a parameter: the returned list, to put before the FROM clause's own), or its database default. No
    per-row Python at all: for rows that are already in the database (a bulk chunk's staged rows)."""
    rest = _defaulted(model, columns)
    quote = connection.ops.quote_name
    names = ", ".join(quote(cast(str, f.column)) for f in [*_fields(model, list(columns)), *rest])
    values = ", ".join([*columns.values(), *("%s" for _ in rest)])
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) SELECT {values}"
    return sql, [_default(model, field) for field in rest]


def _defaulted(model: type[models.Model], columns: Iterable[str]) -> list[models.Field[Any, Any]]:
    """The fields a set-based write leaves out of `columns` that still need a value from us: not an auto-increment
    key, a generated column or a column with a database default (e.g. a reward's reference, drawn from a sequence),
    which the database fills. Refuses a column the model does not have."""
    given = set(columns)
    fields = model._meta.concrete_fields
    unknown = given - {field.attname for field in fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no column(s) {sorted(unknown)}")
    return [
        f
        for f in fields
        if f.attname not in given
        and not f.generated
        and not isinstance(f, models.fields.AutoFieldMixin)
        and not f.has_db_default()
    ]


def _fields(model: type[models.Model], columns: Sequence[str]) -> list[models.Field[Any, Any]]:
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    return [by_attname[name] for name in columns]


def _default(model: type[models.Model], field: models.Field[Any, Any]) -> Any:
    value = None if field.primary_key else field.get_default()  # "" for text fields without a default
    if value is None:
        if not field.null:
            raise ValueError(f"{model.__name__}.{field.attname} needs a value per row")
        return None
    if isinstance(field, models.JSONField):
        return json.dumps(value, separators=(",", ":"))
    return value


# The INSERT text Django compiled for a shape of rows (model, database, number of rows, key and database-default
# columns left out), with the fields in its column order and whether it is the UNNEST form (one array per column)
# Django uses on PostgreSQL for several rows. The text depends only on the shape; the values are computed per call by
# the same field methods Django's compiler calls (`pre_save`, `get_db_prep_save`). None: a shape Django compiles with
# per-value SQL (a field with its own placeholder, or an expression as a value): never reused.
_Shape = tuple[type[models.Model], str, int, bool, tuple[str, ...]]
# Per field of a shape: the field, and the one Python type whose values its `get_db_prep_save` returns unchanged on
# PostgreSQL (None: always ask the field). See _plain_type.
_Column = tuple["models.Field[Any, Any]", "type | None"]
_SHAPES: dict[_Shape, tuple[str, list[_Column], bool] | None] = {}
# Per model, its fields with a database default (few or none): what insert_statement checks for DatabaseDefault.
_DB_DEFAULTS: dict[type[models.Model], list[models.Field[Any, Any]]] = {}


def insert_statement(objs: Sequence[models.Model]) -> tuple[str, list[Any]]:
    """The INSERT `bulk_create(objs)` would run (same SQL, same values), without RETURNING: new instances of one
    model, primary keys set unless auto-increment (those are left to the database and stay None here)."""
    model = type(objs[0])
    for obj in objs:
        # What bulk_create does first (a private Model method, so not in django-stubs): a related object's
        # primary key is copied to its foreign key column, and an unsaved related object refused.
        obj._prepare_related_fields_for_save(operation_name="insert_together")  # type: ignore[attr-defined]
    auto_pk = isinstance(model._meta.pk, models.fields.AutoFieldMixin) and objs[0].pk is None
    # Columns every row leaves to their database default (e.g. a reward's reference, drawn from a sequence) are
    # left out of the statement, which is what Django's `DEFAULT` for them does.
    with_db_default = _DB_DEFAULTS.get(model)
    if with_db_default is None:
        with_db_default = _DB_DEFAULTS[model] = [f for f in model._meta.concrete_fields if f.has_db_default()]
    defaults = tuple(
        field.attname
        for field in with_db_default
        if all(isinstance(getattr(obj, field.attname), DatabaseDefault) for obj in objs)
    )
    shape_key = (model, connection.alias, len(objs), auto_pk, defaults)
    shape = _SHAPES.get(shape_key)
    if shape is not None:
        sql, columns, unnest = shape
        rows = _values(columns, objs)
        if rows is not None:
            return sql, [list(column) for column in zip(*rows, strict=True)] if unnest else _flat(rows)
    return _compile(shape_key, objs)


def _values(columns: Sequence[_Column], objs: Sequence[models.Model]) -> list[list[Any]] | None:
    """Each object's database values, as SQLInsertCompiler.prepare_value(field, pre_save_val(field, obj)) computes
    them; None when a value is an expression (it is compiled into the SQL text: the shape's text does not apply).

    A value of its column's plain type (_plain_type) is taken as it is: for it the field's `get_db_prep_save`
    returns it unchanged on PostgreSQL, and most of an order's ~100 values are such (the method is four calls
    deep per value). Anything else, None included, goes through the field's own methods."""
    rows = []
    for obj in objs:
        row = []
        for field, plain in columns:
            value = field.pre_save(obj, True)
            if type(value) is plain and (plain not in (Decimal, datetime) or _unchanged(value)):
                row.append(value)
                continue
            if hasattr(value, "resolve_expression"):
                return None
            row.append(field.get_db_prep_save(value, connection=connection))
        rows.append(row)
    return rows


# Field classes (exactly these: a subclass may prepare values its own way) whose get_db_prep_save, on PostgreSQL,
# returns a value of this Python type unchanged: get_prep_value's to_python gives back the same object (a str, an
# int, a bool, a UUID, a finite Decimal, an aware datetime) and the backend's adapt_*_value returns it as it is.
_PLAIN_TYPES: dict[type, type] = {
    models.CharField: str, models.TextField: str, models.EmailField: str, models.SlugField: str,
    models.URLField: str, models.UUIDField: uuid.UUID, models.IntegerField: int, models.BigIntegerField: int,
    models.SmallIntegerField: int, models.PositiveIntegerField: int, models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int, models.BooleanField: bool, models.DecimalField: Decimal,
    models.DateTimeField: datetime,
}  # fmt: skip


def _unchanged(value: Any) -> bool:
    """Django refuses a Decimal that is not finite, and makes a naive datetime aware (with a warning)."""
    return value.is_finite() if isinstance(value, Decimal) else value.tzinfo is not None


def _plain_type(field: models.Field[Any, Any]) -> type | None:
    """The Python type whose values `field` saves unchanged (a foreign key: its target's), or None."""
    if isinstance(field, models.ForeignKey) and type(field) in (models.ForeignKey, models.OneToOneField):
        field = field.target_field
    return _PLAIN_TYPES.get(type(field)) if connection.vendor == "postgresql" else None


def _flat(rows: list[list[Any]]) -> list[Any]:
    return [value for row in rows for value in row]


def _compile(shape_key: _Shape, objs: Sequence[models.Model]) -> tuple[str, list[Any]]:
    """Django's insert compiler, as bulk_create runs it; the text is kept for the shape when it holds no per-value
    SQL."""
    from django.db.models.sql import InsertQuery

    model, _, count, auto_pk, defaults = shape_key
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.generated and not (auto_pk and field.primary_key) and field.attname not in defaults
    ]
    query = InsertQuery(model)
    query.insert_values(fields, list(objs))
    # By alias, so the compiler holds this thread's wrapper itself: given the `django.db.connection` proxy, each
    # of its ~100 `connection.ops` reads per order goes through asgiref's Local (measured: ~1/5 of this call).
    [(sql, params)] = query.get_compiler(using=connection.alias).as_sql()
    values = [[getattr(obj, field.attname) for field in fields] for obj in objs]  # as pre_save left them
    plain = not any(hasattr(field, "get_placeholder") for field in fields) and not any(
        hasattr(value, "resolve_expression") for row in values for value in row
    )
    # Django's PostgreSQL compiler sends several rows as one array per column (UNNEST) when every column allows it.
    unnest = count > 1 and len(params) == len(fields)
    _SHAPES[shape_key] = (sql, [(field, _plain_type(field)) for field in fields], unnest) if plain else None
    return sql, list(params)


def insert_together(
    *groups: Sequence[models.Model],
    then: tuple[str, Sequence[Any]] | None = None,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Write several groups of new rows (one model per group, as insert_statement) in ONE statement, one
    round trip instead of one per group: each INSERT a data-modifying WITH query. `then`: an optional
    (SELECT, params) run by the same statement, whose rows are returned (it does not see the new rows: one
    snapshot for the whole statement).

    Call inside a transaction: foreign keys between the groups are checked at commit (Django's are
    DEFERRABLE INITIALLY DEFERRED), and an error in any group fails them all, as it fails the transaction.

    `returning` (without `then`): fields of the LAST group that the database fills (e.g. a column default
    drawn from a sequence), read back by the same statement and set on its instances.
    """
    if returning and then is not None:
        raise ValueError("returning reads the last group's rows: pass it without `then`")
    statements = [insert_statement(objs) for objs in groups if objs]
    if then is not None:
        statements.append((then[0], list(then[1])))
    if not statements:
        return []
    *ctes, (main_sql, main_params) = statements  # the last one is the main statement
    sql = main_sql
    params: list[Any] = []
    if ctes:
        sql = "WITH " + ", ".join(f"w{i} AS ({cte_sql})" for i, (cte_sql, _) in enumerate(ctes)) + " " + main_sql
        for _, cte_params in ctes:
            params.extend(cte_params)
    params.extend(main_params)
    last = [objs for objs in groups if objs][-1]
    if returning:
        fields = {field.attname: field for field in type(last[0])._meta.concrete_fields}
        names = [type(last[0])._meta.pk.attname, *returning]
        sql += " RETURNING " + ", ".join(connection.ops.quote_name(cast(str, fields[name].column)) for name in names)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if then is not None or returning else []
    if returning:
        by_pk = {obj.pk: obj for obj in last}
        for pk, *values in rows:
            for name, value in zip(returning, values, strict=True):
                setattr(by_pk[pk], name, value)
        rows = []
    alias = connection.alias  # once: each read of the `connection` proxy goes through asgiref's Local
    for objs in groups:
        for obj in objs:
            obj._state.adding = False
            obj._state.db = alias
    return rows
