"""Hot-path reads compiled to SQL once per process: a queryset's statement kept, run again with new parameters.

Django compiles a queryset to SQL on every evaluation. For `Product.objects.select_related("brand", "supplier")
.filter(pk=…)` that costs more CPU than the query itself (bench/PROFILE-orders.md: ~1.3 ms of the ~10 ms an order
costs in-process). A `Precompiled` read builds its queryset once with marker values in place of the parameters,
keeps the SQL and Django's row-to-object plan (columns, converters, select_related populators), and afterwards
only swaps the real values in. The statement has no schema in it, so it runs in whichever tenant schema the
connection is set to, exactly like the queryset would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connection, models
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=models.Model)


class Precompiled(Generic[M]):
    """`build(*markers)` returns the queryset; each marker must reach the SQL as one parameter unchanged (a UUID
    or a string compared with `=`), and `fetch(*values)` runs the same statement with the values in their place.

    The queryset must not depend on anything but its parameters (no `now()` in Python, no current tenant in a
    filter): what it is at the first call is what every later call runs.
    """

    def __init__(self, build: Callable[..., models.QuerySet[M]], markers: Sequence[Any]) -> None:
        self._build = build
        self._markers = tuple(markers)
        self._plan: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _compile(self) -> tuple[Any, ...]:
        queryset = self._build(*self._markers)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        slots = []
        for marker in self._markers:
            found = [i for i, param in enumerate(params) if param == marker]
            if len(found) != 1:
                raise ValueError(f"marker {marker!r} reached the SQL {len(found)} times, not once")
            slots.append(found[0])
        klass_info, select = compiler.klass_info, compiler.select
        if klass_info is None:
            raise ValueError("a Precompiled read returns model instances: no values() or aggregates")
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in select[start:end]]
        # The stubs describe Django 6, which adds a `fetch_mode` argument; Django 5.2 (requirements.txt) has none.
        populators = get_related_populators(klass_info, select, queryset.db)  # type: ignore[call-arg]
        # The columns' converters (JSON, arrays…), which results_iter would work out again on every call.
        expressions = [column[0] for column in select[: compiler.col_count]]
        if compiler.has_composite_fields(expressions):
            raise ValueError("a Precompiled read selects no composite primary key")
        converters = compiler.get_converters(expressions)
        return (
            sql,
            tuple(params),
            tuple(slots),
            compiler,
            converters,
            klass_info["model"],
            names,
            start,
            end,
            populators,
        )

    def fetch(self, *values: Any) -> list[M]:
        """The rows for these parameter values, as the queryset would return them (related objects included)."""
        if self._plan is None:
            with self._lock:
                if self._plan is None:
                    self._plan = self._compile()
        sql, template, slots, compiler, converters, model, names, start, end, populators = self._plan
        params = list(template)
        for slot, value in zip(slots, values, strict=True):
            params[slot] = value
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        objects = []
        # The fields' converters applied as a queryset's evaluation (results_iter) applies them.
        for row in compiler.apply_converters(rows, converters) if converters else rows:
            obj = model.from_db(connection.alias, names, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            objects.append(obj)
        return objects

    def first(self, *values: Any) -> M | None:
        rows = self.fetch(*values)
        return rows[0] if rows else None


# psycopg keeps the parsed form of a statement (where its placeholders are) in an LRU cache keyed by the text, but
# only for a text of at most 4,096 bytes with at most 50 parameters; anything larger it parses afresh with a regular
# expression on every call. The order's write set (the order and its rewards in one statement, ~65 parameters) is
# such a statement, sent once per order: ~0.2 ms of CPU each time to parse the same text. The statements our hot
# paths repeat are built once per shape (core.bulk.insert_statement), so their texts are few; the cache stays an LRU
# of 128 texts either way.
PSYCOPG_CACHED_STATEMENT_LENGTH = 16_384
PSYCOPG_CACHED_STATEMENT_PARAMS = 400


def psycopg_statement_cache_widen() -> bool:
    """Let psycopg cache the parsed form of statements up to PSYCOPG_CACHED_STATEMENT_* (never narrower than its own
    limits). False when this psycopg has no such limits (its module changed): nothing is set, nothing breaks."""
    from psycopg import _queries

    if not all(hasattr(_queries, name) for name in ("MAX_CACHED_STATEMENT_LENGTH", "MAX_CACHED_STATEMENT_PARAMS")):
        return False
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, PSYCOPG_CACHED_STATEMENT_LENGTH)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, PSYCOPG_CACHED_STATEMENT_PARAMS)
    return True
