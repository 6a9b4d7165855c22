"""Folding a trigger-fed delta table into its rollup table: the plumbing behind every maintained total.

Writers (database triggers) only INSERT delta rows, so no transaction waits on a shared counter row and no lock
is added to any writer's lock order. `fold_deltas` moves every pending delta into the rollup in ONE statement
(DELETE ... RETURNING feeding an upsert): a reader sees each delta either still pending or already folded,
never both or neither, so a reader that sums rollup + pending deltas is exact at its snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection


def _upsert(rollup: str, keys: Sequence[str], sums: Sequence[str]) -> str:
    """INSERT … SELECT from `moved`, grouped by `keys`, adding `sums` to the rows already there."""
    key_list = ", ".join(keys)
    sum_list = ", ".join(f"sum({column})" for column in sums)
    updates = ", ".join(f"{column} = {rollup}.{column} + excluded.{column}" for column in sums)
    group = ", ".join(str(index) for index in range(1, len(keys) + 1))
    return (
        f"INSERT INTO {rollup} ({key_list}, {', '.join(sums)}) SELECT {key_list}, {sum_list} FROM moved "
        f"GROUP BY {group} ON CONFLICT ({key_list}) DO UPDATE SET {updates} RETURNING 1"
    )


def fold_deltas(
    *,
    deltas: str,
    rollup: str,
    keys: Sequence[str],
    sums: Sequence[str],
    also: Sequence[tuple[str, Sequence[str]]] = (),
) -> int:
    """Move every row of table `deltas` into table `rollup` (unique on `keys`), adding up `sums`, and into each
    coarser rollup of `also` ((table, its keys: a subset of `keys`)); returns the number of delta rows folded.
    Call inside a transaction that holds the caller's one-folder-at-a-time lock."""
    extra = "".join(f", also_{n} AS ({_upsert(table, columns, sums)})" for n, (table, columns) in enumerate(also))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS (DELETE FROM {deltas} RETURNING *), folded AS ({_upsert(rollup, keys, sums)}){extra} "
            "SELECT count(*) FROM moved"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def try_fold_lock(key: int) -> bool:
    """This transaction's turn to fold in the current schema (an advisory lock it holds until it ends), or False if
    another transaction has it for this schema. `key` (32 bits) names what is folded; the schema is the lock's
    second half, so compactions of different schemas never turn each other away (a hash collision between two
    schemas only delays one of them to its next run)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(current_schema()))", [key])
        row = cursor.fetchone()
    return bool(row and row[0])
