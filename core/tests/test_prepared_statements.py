"""DB_PREPARED_STATEMENTS: the database settings ask psycopg to bind on the server and prepare repeated statements,
refuse it behind transaction pooling, and a prepared statement never answers one tenant with another's rows (it is
re-planned when the connection switches schema)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.utils import load_backend

from rewards_portal.settings.base import database_config

URL = "postgresql://app@db.internal:5432/rewards"


def test_the_setting_binds_on_the_server_and_prepares_repeated_statements(monkeypatch):
    assert "server_side_binding" not in database_config(URL).get("OPTIONS", {})
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "true")
    assert database_config(URL)["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5}
    monkeypatch.setenv("DB_TRANSACTION_POOLING", "true")
    with pytest.raises(ImproperlyConfigured, match="DB_PREPARED_STATEMENTS"):
        database_config(URL)


def test_a_prepared_statement_reads_the_schema_the_connection_is_in(committed_tenant, tenant_b):
    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}}
    prepared = load_backend(settings["ENGINE"]).DatabaseWrapper(settings, alias="prepared")
    schemas = {committed_tenant.schema_name: "11.0000", tenant_b.schema_name: "22.0000"}
    select = "SELECT balance::text FROM funds_ledgeraccount WHERE currency = %s AND kind = %s"
    try:
        with prepared.cursor() as cursor:
            for schema, balance in schemas.items():
                cursor.execute(f'SET search_path = "{schema}", public')
                cursor.execute(
                    "INSERT INTO funds_ledgeraccount (currency, kind, balance, updated_at) "
                    "VALUES ('XTS', 'cash', %s, now())",
                    [balance],
                )
            seen = []
            for schema in [*schemas, *schemas]:  # each schema's turn after the statement was prepared in the other
                cursor.execute(f'SET search_path = "{schema}", public')
                for _ in range(6):
                    cursor.execute(select, ["XTS", "cash"])
                seen.append((schema, cursor.fetchone()[0]))
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT balance%%'")
            assert cursor.fetchone()[0] == 1
    finally:
        with prepared.cursor() as cursor:
            for schema in schemas:
                cursor.execute(f'DELETE FROM "{schema}".funds_ledgeraccount WHERE currency = %s', ["XTS"])
        prepared.close()
    assert seen == [*schemas.items(), *schemas.items()]
