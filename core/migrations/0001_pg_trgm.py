"""The pg_trgm extension (trigram indexes for fast "contains" search), where the server has it.

The embedded PostgreSQL and the official images ship it; an operator's managed PostgreSQL may not, or may not let
our role create extensions: then this logs one line and moves on, and nothing depends on pg_trgm yet. An
extension belongs to the database, so it is created once, in the public schema (core is a shared app, so
django-tenants runs this migration there only), where every tenant's search_path ("<tenant>, public") finds it.
"""

import logging

from django.db import DatabaseError, migrations, transaction
from django_tenants.utils import get_public_schema_name

logger = logging.getLogger("rewards_portal.migrations")


def create_extension_where_available(schema_editor, name: str) -> bool:
    """CREATE EXTENSION `name` in the public schema; False (and a log line) where the server cannot."""
    connection = schema_editor.connection
    if getattr(connection, "schema_name", get_public_schema_name()) != get_public_schema_name():
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT installed_version FROM pg_available_extensions WHERE name = %s", [name])
        row = cursor.fetchone()
    if row is None:
        logger.warning("PostgreSQL extension %s is not available on this server; skipped", name)
        return False
    if row[0] is not None:
        return True
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:  # a savepoint
            cursor.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" SCHEMA public')
    except DatabaseError as exc:
        logger.warning("PostgreSQL extension %s could not be created (%s); skipped", name, str(exc).strip())
        return False
    return True


def create_pg_trgm(apps, schema_editor) -> None:
    create_extension_where_available(schema_editor, "pg_trgm")


class Migration(migrations.Migration):
    dependencies = []

    # Reversing leaves the extension: dropping it could break an operator's own indexes.
    operations = [migrations.RunPython(create_pg_trgm, migrations.RunPython.noop)]
