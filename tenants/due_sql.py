"""The statement triggers that note due work for the sweeps and changes for the metrics snapshot (tenants.due), as
the apps' migrations create them.

Each trigger calls public.tenant_due_note(kind[, status, ...]) (tenants migration 0009) or
public.tenant_due_note_rows(kind) (tenants migration 0015) after an INSERT or UPDATE of `table`, once per
statement. Kept free of imports so migrations can use it: changing the SQL here changes what later migrations
create, never what earlier ones did (a migration that already ran is not replayed), except through tenant
provisioning, which replays every migration's SQL and so always gets the current triggers.
"""

from __future__ import annotations


def due_trigger_sql(
    table: str,
    args: str,
    *,
    name: str = "tenant_due",
    function: str = "tenant_due_note",
    events: tuple[str, ...] = ("INSERT", "UPDATE"),
) -> list[tuple[str, str]]:
    """(create, drop) SQL per trigger on `table`, one per event of `events`; `args` is the SQL argument list of
    `function` (tenant_due_note: the kind, then the statuses that make work; tenant_due_note_rows: the kind, noted
    when the statement wrote any row); `name` the triggers' prefix (a second kind on the same table needs its own)."""
    return [
        (
            f"CREATE TRIGGER {name}_{event.lower()} AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION public.{function}({args});",
            f"DROP TRIGGER IF EXISTS {name}_{event.lower()} ON {table};",
        )
        for event in events
    ]


def change_trigger_sql(table: str, kind: str, events: str = "INSERT OR UPDATE OR DELETE") -> tuple[str, str]:
    """(create, drop) SQL of one trigger that notes `kind` for `table`'s schema after any statement of `events`,
    whatever rows it wrote (no transition table to collect: the cheapest trigger there is)."""
    name = f"tenant_due_{kind}"
    return (
        f"CREATE TRIGGER {name} AFTER {events} ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_note('{kind}');",
        f"DROP TRIGGER IF EXISTS {name} ON {table};",
    )


def due_notes_trigger_sql(table: str, kinds: dict[str, tuple[str, ...]], event: str) -> tuple[str, str]:
    """(create, drop) SQL of one statement trigger after `event` (INSERT or UPDATE) on `table` that notes every kind
    of `kinds` at once (public.tenant_due_notes(), tenants migration 0016): a kind with statuses when a written row
    has one of them, a kind with none after any statement. One trigger instead of one per kind: one call, one scan
    of the written rows' statuses, one INSERT for all the kinds noted."""
    args = ", ".join(f"'{kind}', '{' '.join(statuses)}'" for kind, statuses in kinds.items())
    name = f"tenant_due_notes_{event.lower()}"
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION public.tenant_due_notes({args});",
        f"DROP TRIGGER IF EXISTS {name} ON {table};",
    )
