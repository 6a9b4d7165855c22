"""Migrating many tenant schemas: which are behind, and replaying one schema's migration SQL in the others.

`migrate` on one tenant schema costs ~1 s on 2 CPUs whatever the migration (Django rebuilds the model state
of every app, runs the post-migrate signal), so 1,000 tenants (2,000 schemas) took ~30 min one at a time. Every
tenant schema is built from the same migrations, so a pending set of migrations is the same SQL in each: the
first schema behind is migrated by Django as usual while its SQL is collected (what `sqlmigrate` prints), and the
others replay that SQL in one transaction each with the schema on their search_path, then record the same
`django_migrations` rows: a few milliseconds per schema.

Only schema-level operations are replayed (fields, indexes, constraints, SQL). A plan with Python code
(`RunPython`) or with models created, deleted or renamed (whose content types and permissions the post-migrate
signal writes in each schema) is migrated schema by schema by Django, several processes at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, migrations, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.utils import timezone

from core.db import connection

logger = logging.getLogger(__name__)

# Operations whose effect is only the SQL they emit in the schema they run in.
_REPLAYABLE = (
    migrations.AddField,
    migrations.RemoveField,
    migrations.AlterField,
    migrations.RenameField,
    migrations.AddIndex,
    migrations.RemoveIndex,
    migrations.RenameIndex,
    migrations.AddConstraint,
    migrations.RemoveConstraint,
    migrations.AlterUniqueTogether,
    migrations.AlterIndexTogether,
    migrations.AlterModelOptions,
    migrations.AlterModelManagers,
    migrations.AlterModelTable,
    migrations.AlterModelTableComment,
    migrations.RunSQL,
)


def tenant_migration_leaves() -> set[tuple[str, str]]:
    """The latest migration of every app migrated in tenant schemas: a schema holding all of them is current."""
    labels = {apps.get_app_config(name.rsplit(".", 1)[-1]).label for name in settings.TENANT_APPS}
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return {node for node in graph.leaf_nodes() if node[0] in labels}


def schemas_behind(schemas: Iterable[str], leaves: set[tuple[str, str]]) -> list[str]:
    """The schemas missing one of `leaves`: one indexed query each (~0.3 ms), so a re-run after an interruption
    migrates only what is left."""
    ordered = sorted(leaves)
    app_labels, names = [app for app, _ in ordered], [name for _, name in ordered]
    behind = []
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(
                f'SELECT count(*) FROM "{schema}".django_migrations '
                "WHERE (app, name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                [app_labels, names],
            )
            row = cursor.fetchone()
            if row is None or row[0] < len(leaves):
                behind.append(schema)
    return behind


def _replayable(plan: list[tuple[Migration, bool]]) -> bool:
    return bool(plan) and all(
        not backwards and all(isinstance(operation, _REPLAYABLE) for operation in migration.operations)
        for migration, backwards in plan
    )


def migration_sql(*, schema: str) -> tuple[list[tuple[str, str]], list[str]] | None:
    """The migrations `schema` lacks and their SQL, when the plan can be replayed elsewhere; else None."""
    connection.set_schema(schema)
    try:
        executor = MigrationExecutor(connection)
        targets = [node for node in executor.loader.graph.leaf_nodes() if node in tenant_migration_leaves()]
        plan = executor.migration_plan(targets)
        if not _replayable(plan):
            return None
        # From the state of what this schema has applied (the loader's collect_sql would start from the first
        # planned migration's ancestors only, which lacks other apps' models when the plan spans apps).
        state = executor._create_project_state(with_applied_migrations=True)  # type: ignore[attr-defined]  # not in the stubs
        statements: list[str] = []
        for migration, _ in plan:
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                state = migration.apply(state, editor, collect_sql=True)
            statements.extend(editor.collected_sql)
        applied = [(migration.app_label, migration.name) for migration, _ in plan]
    finally:
        connection.set_schema_to_public()
    return applied, statements


class MigrationReplayError(Exception):
    """A schema the replayed SQL failed in (its error chained): nothing of it was applied there, and the schemas
    before it keep theirs; platform_migrate run again resumes from it."""


def migration_replay(*, schema: str, applied: list[tuple[str, str]], statements: list[str]) -> None:
    """Run `statements` in `schema` and record `applied`, all or nothing; skipped if another run did it."""
    try:
        _replay(schema=schema, applied=applied, statements=statements)
    except DatabaseError as exc:
        names = ", ".join(f"{app}.{name}" for app, name in applied)
        message = f"replaying {names} in schema {schema} failed (nothing applied there): {exc}"
        raise MigrationReplayError(message) from exc


def _replay(*, schema: str, applied: list[tuple[str, str]], statements: list[str]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL search_path = "{schema}", public')
        cursor.execute(
            "SELECT count(*) FROM django_migrations WHERE (app, name) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            [[app for app, _ in applied], [name for _, name in applied]],
        )
        row = cursor.fetchone()
        if row is not None and row[0]:
            return  # already (partly) applied by another run: leave it to Django's own migrate
        for statement in statements:
            if statement.strip() and not statement.lstrip().startswith("--"):
                cursor.execute(statement)
        now = timezone.now()
        cursor.executemany(
            "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
            [(app, name, now) for app, name in applied],
        )
        cursor.execute("SET LOCAL search_path = public")
    connection.search_path_set_schemas = None  # make django-tenants set the search_path again on next use
