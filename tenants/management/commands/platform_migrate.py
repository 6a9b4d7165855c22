"""`manage.py platform_migrate`: the public schema, the tenant template, then every tenant schema that is behind.

Resumable: a schema that already has every migration is skipped (one query each), so a run stopped half-way goes
on where it stopped. The first schema behind is migrated by Django and its SQL replayed in the others
(tenants/migrating.py); what cannot be replayed is migrated by Django, --parallel schemas at a time.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings
from django_tenants.management.commands.migrate_schemas import Command as MigrateSchemasCommand
from django_tenants.migration_executors import get_executor
from django_tenants.utils import get_public_schema_name, get_tenant_base_schema

from core.db import connection
from tenants.migrating import (
    MigrationReplayError,
    migration_replay,
    migration_sql,
    schemas_behind,
    tenant_migration_leaves,
)
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template schema, then every tenant schema that is behind "
        "(replaying one schema's SQL in the others where it can, else --parallel schemas at a time)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--parallel",
            type=int,
            default=settings.PLATFORM_MIGRATE_PROCESSES,
            help="schemas Django migrates at once, one process each (default: PLATFORM_MIGRATE_PROCESSES)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from tenants.services import tenant_template_ensure

        verbosity = options["verbosity"]
        parallel = max(1, options["parallel"])
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        tenant_template_ensure(verbosity=verbosity)
        connection.set_schema_to_public()
        skip = {get_public_schema_name(), get_tenant_base_schema()}
        # Sandbox twins never used have no schema: provisioned later, they get the template current then.
        tenant_schemas = Tenant.objects.with_schema().order_by("pk").values_list("schema_name", flat=True)
        schemas = [s for s in tenant_schemas if s not in skip]
        started = time.monotonic()
        leaves = tenant_migration_leaves()
        pending = schemas_behind(schemas, leaves)
        self._say(
            verbosity,
            f"{len(pending)} of {len(schemas)} tenant schemas to migrate ({time.monotonic() - started:.1f} s to check)",
        )
        if not pending:
            return
        replay = migration_sql(schema=pending[0])
        self._django_migrate([pending[0]], parallel=1, verbosity=verbosity)
        if replay is not None:
            applied, statements = replay
            for schema in pending[1:]:
                try:
                    migration_replay(schema=schema, applied=applied, statements=statements)
                except MigrationReplayError as exc:
                    raise CommandError(f"{exc}. Run platform_migrate again to resume from that schema.") from exc
            self._say(verbosity, f"replayed {len(applied)} migration(s) in {len(pending) - 1} schemas")
        left = schemas_behind(pending, leaves)
        if left:
            self._say(verbosity, f"Django migrates {len(left)} schemas, {parallel} at a time")
            self._django_migrate(left, parallel=parallel, verbosity=verbosity)
        self._say(verbosity, f"migrated {len(pending)} tenant schemas in {time.monotonic() - started:.1f} s")

    def _say(self, verbosity: int, text: str) -> None:
        if verbosity:
            self.stdout.write(text)

    def _django_migrate(self, schemas: list[str], *, parallel: int, verbosity: int) -> None:
        """django-tenants' executors: `standard` in this process, `multiprocessing` in a pool of `parallel`."""
        migrate = MigrateSchemasCommand(stdout=self.stdout, stderr=self.stderr)
        parser = migrate.create_parser("manage.py", "migrate_schemas")
        options = vars(parser.parse_args(["--tenant", "--noinput", "--skip-checks", f"--verbosity={verbosity}"]))
        migrate_args = options.pop("args", [])
        codename = "multiprocessing" if parallel > 1 and len(schemas) > 1 else "standard"
        # Each process takes a few schemas at a time (imap chunks); one slow schema holds only its own chunk.
        chunks = max(1, min(10, len(schemas) // (parallel * 4)))
        with override_settings(TENANT_MULTIPROCESSING_MAX_PROCESSES=parallel, TENANT_MULTIPROCESSING_CHUNKS=chunks):
            get_executor(codename=codename)(migrate_args, options).run_migrations(tenants=list(schemas))
        connection.set_schema_to_public()
