"""The pg_trgm migration: the extension where the server has it, once, in the public schema; a log line and no
failure where the server lacks it or our role may not create extensions (an operator's managed PostgreSQL)."""

import importlib
import logging
import uuid

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

pg_trgm_migration = importlib.import_module("core.migrations.0001_pg_trgm")


def _an_extension_not_yet_created() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_available_extensions WHERE installed_version IS NULL ORDER BY name LIMIT 1")
        row = cursor.fetchone()
    if row is None:
        pytest.skip("this server has no extension left to try")
    return row[0]


def _extension_schemas(extension: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = %s",
            [extension],
        )
        return [schema for (schema,) in cursor.fetchall()]


def test_trigram_search_works_in_a_tenant_schema(tenant_a):
    assert _extension_schemas("pg_trgm") == ["public"]
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT current_schema(), similarity('Amazon gift card', 'amazon giftcard') > 0.4")
        assert cursor.fetchone() == (tenant_a.schema_name, True)


def test_run_in_a_tenant_schema_it_creates_nothing(tenant_a):
    """Created from a tenant schema, an extension's functions would land there, out of the other tenants' reach."""
    extension = _an_extension_not_yet_created()
    with tenant_context(tenant_a), connection.schema_editor() as editor:
        assert pg_trgm_migration.create_extension_where_available(editor, extension) is False
    assert _extension_schemas(extension) == []


def test_an_extension_the_server_lacks_is_skipped_with_a_log_line(db, caplog):
    with caplog.at_level(logging.WARNING, logger="rewards_portal.migrations"), connection.schema_editor() as editor:
        created = pg_trgm_migration.create_extension_where_available(editor, "rp_no_such_extension")
    assert created is False
    assert "rp_no_such_extension is not available on this server; skipped" in caplog.text
    with connection.cursor() as cursor:  # the migration's transaction is still usable
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_role_that_may_not_create_extensions_is_skipped_with_a_log_line(db, caplog):
    extension = _an_extension_not_yet_created()
    role = f"rp_no_create_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role}")  # no CREATE on the database, like a managed server's app role
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"SET LOCAL ROLE {role}")
    try:
        with caplog.at_level(logging.WARNING, logger="rewards_portal.migrations"), connection.schema_editor() as editor:
            created = pg_trgm_migration.create_extension_where_available(editor, extension)
        assert created is False
        assert f"PostgreSQL extension {extension} could not be created" in caplog.text
        assert _extension_schemas(extension) == []
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
