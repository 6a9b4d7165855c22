"""DB_PREPARED_STATEMENTS: on a direct connection the database settings ask psycopg to bind on the server and prepare
repeated statements (unless turned off), behind transaction pooling they do not and refuse to, and a prepared
statement never answers one tenant with another's rows (it is re-planned when the connection switches schema), reads
whose plan depends on the value are never prepared (core.db.custom_plans), and a stale plan closes the connection
from every cursor entry point that runs prepared statements."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.utils import NotSupportedError, load_backend
from django_tenants.utils import tenant_context
from psycopg import sql

from funds.services import funds_deposit
from rewards_portal.settings.base import database_config
from testsupport.orders import digital_order
from testsupport.problems import assert_problem

URL = "postgresql://app@db.internal:5432/rewards"
PREPARING = {"server_side_binding": True, "prepare_threshold": 5}  # what DB_PREPARED_STATEMENTS gives (first test)


def preparing_cursor() -> type:
    """The psycopg cursor class this backend gives a connection with DB_PREPARED_STATEMENTS on (the test session may
    run without): switched onto the test's own connection, its statements are prepared as in production."""
    settings = {**connection.settings_dict, "OPTIONS": PREPARING}
    return (
        load_backend(settings["ENGINE"])
        .DatabaseWrapper(settings, alias="probe")
        .get_connection_params()["cursor_factory"]
    )


def test_a_direct_connection_binds_on_the_server_and_prepares_unless_turned_off(monkeypatch):
    monkeypatch.delenv("DB_PREPARED_STATEMENTS", raising=False)
    monkeypatch.delenv("DB_TRANSACTION_POOLING", raising=False)
    prepared = {"server_side_binding": True, "prepare_threshold": 5}
    assert database_config(URL)["OPTIONS"] == prepared  # the default
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "true")
    assert database_config(URL)["OPTIONS"] == prepared
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "false")
    assert "server_side_binding" not in database_config(URL).get("OPTIONS", {})


def test_behind_transaction_pooling_nothing_is_prepared_and_asking_for_it_is_refused(monkeypatch):
    monkeypatch.delenv("DB_PREPARED_STATEMENTS", raising=False)
    monkeypatch.setenv("DB_TRANSACTION_POOLING", "true")
    config = database_config(URL)
    assert "server_side_binding" not in config.get("OPTIONS", {})
    assert config["ENGINE"] == "tenants.pooled_backend"
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "false")
    assert "server_side_binding" not in database_config(URL).get("OPTIONS", {})
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "true")
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


def test_two_tenants_requests_on_one_connection_each_read_their_own_orders(api_a, api_b, funded_a, tenant_b, shop):
    """API requests of two tenants taking turns on one connection, its statements prepared: every list, detail and
    balance answers from the requesting tenant's schema, and the other tenant's order stays not found."""
    connection.ensure_connection()
    session = connection.connection
    saved = session.cursor_factory, session.prepare_threshold
    # Whatever DB_PREPARED_STATEMENTS says in this run: this connection binds on the server and prepares.
    session.cursor_factory, session.prepare_threshold = preparing_cursor(), 5
    try:
        with tenant_context(tenant_b):
            funds_deposit(currency="USD", amount="1000.00")
        amounts = {api_a: "25.00", api_b: "50.00"}
        orders = {api: api.post("/api/v1/orders", digital_order(shop.coffee_usd, amount)).json() for api, amount in
                  amounts.items()}  # fmt: skip
        other = {api_a: orders[api_b]["id"], api_b: orders[api_a]["id"]}
        for _ in range(8):  # past psycopg's threshold of 5: the later turns run prepared statements
            for api, order in orders.items():
                listed = api.get("/api/v1/orders").json()["results"]
                assert [(o["id"], o["total"]["amount"]) for o in listed] == [(order["id"], amounts[api])]
                assert api.get(f"/api/v1/orders/{order['id']}").json()["id"] == order["id"]
                assert_problem(api.get(f"/api/v1/orders/{other[api]}"), 404, "not_found")
                [usd] = [b for b in api.get("/api/v1/balances").json()["results"] if b["currency"] == "USD"]
                assert usd["held"] == amounts[api]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ['%"orders_order"%'])
            assert cursor.fetchone()[0] > 0  # the lists and lookups above were served by prepared statements
    finally:
        session.cursor_factory, session.prepare_threshold = saved


def test_searches_and_the_rewards_list_by_status_are_planned_for_their_values_every_time(
    api_a, funded_a, shop, tenant_a
):
    """Past psycopg's threshold a prepared statement may get PostgreSQL's generic plan, made for an average value: at
    200,000 rewards the rewards list by a rare status walked the whole created_at index (60-158 ms instead of 3-5 ms)
    and the order search walked every order (19-36 ms instead of ~1 ms). Those reads are sent unprepared, so each is
    planned for its own status or words: run many times on one connection, none of them is among its prepared
    statements, while the plain lists beside them are."""
    from batches.models import Batch
    from batches.selectors import batch_rows_page
    from testsupport.batches import csv_bytes, digital_rows, upload
    from testsupport.portal import make_staff, portal_client, sign_in

    connection.ensure_connection()
    session = connection.connection
    saved = session.cursor_factory, session.prepare_threshold
    session.cursor_factory, session.prepare_threshold = preparing_cursor(), 5
    try:
        orders = {
            api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, a)).json()["id"] for a in ("10.00", "25.00")
        }
        uploaded = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 2)))
        assert uploaded.status_code == 201, uploaded.content
        with tenant_context(tenant_a):
            batch = Batch.objects.get(pk=uploaded.json()["id"])
        make_staff(tenant_a, "finder@example.com")
        portal = portal_client(tenant_a)
        assert sign_in(portal, "finder@example.com").status_code == 302
        for turn in range(12):  # past the threshold and PostgreSQL's five custom plans
            status = "pending" if turn % 2 else "expired"
            listed = api_a.get("/api/v1/rewards", {"status": status}).json()["results"]
            assert len(listed) == (2 if status == "pending" else 0)
            assert {o["id"] for o in api_a.get("/api/v1/orders", {"q": "lovelace"}).json()["results"]} == orders
            assert len(api_a.get("/api/v1/rewards", {"q": "lovelace"}).json()["results"]) == 2
            assert len(api_a.get("/api/v1/rewards").json()["results"]) == 2
            assert portal.get("/search/", {"q": "lovelace"}).status_code == 200
            assert portal.get("/orders/", {"recipient": "lovelace"}).status_code == 200
            with tenant_context(tenant_a):
                assert batch_rows_page(batch=batch, q="lovelace") == []  # a batch's rows narrowed by a search
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [statement for (statement,) in cursor.fetchall()]
    finally:
        session.cursor_factory, session.prepare_threshold = saved
    rewards_lists = [s for s in prepared if s.startswith('SELECT "orders_reward"."id"') and " LIMIT " in s]
    assert any("WHERE" not in s for s in rewards_lists)  # the plain list: prepared statements were on
    assert [s for s in rewards_lists if '"orders_reward"."status" = $' in s] == []  # by status: never prepared
    assert [s for s in prepared if "search_text" in s or "jsonb_path_query_array" in s] == []  # searches: never


def test_after_a_column_changed_type_a_prepared_read_fails_once_then_runs_on_a_new_connection(committed_tenant, caplog):
    """A migration widens a column while a process runs: its prepared statement reading the column fails (PostgreSQL
    refuses a cached plan whose result type changed), once; the next request reads on a new connection."""
    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}}
    backend = load_backend(settings["ENGINE"])
    web, migrator = backend.DatabaseWrapper(settings, alias="web"), backend.DatabaseWrapper(settings, alias="migrator")
    table = f'"{committed_tenant.schema_name}".stale_plan_probe'
    select = f"SELECT name FROM {table} WHERE id = %s"
    try:
        with migrator.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name varchar(10))")
            cursor.execute(f"INSERT INTO {table} VALUES (1, 'Ada')")
        with web.cursor() as cursor:
            for _ in range(6):
                cursor.execute(select, [1])
        with migrator.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(40)")
        with pytest.raises(NotSupportedError, match="cached plan must not change result type"):
            with web.cursor() as cursor:
                cursor.execute(select, [1])
        [warned] = [r for r in caplog.records if r.name == "tenants.session_backend.base"]
        assert warned.levelname == "WARNING" and warned.connection_closed is True  # an operator sees why
        for _ in range(6):
            with web.cursor() as cursor:
                cursor.execute(select, [1])
                assert cursor.fetchone() == ("Ada",)
    finally:
        with migrator.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        web.close()
        migrator.close()


@pytest.mark.parametrize("entry", ["executemany", "callproc"])
def test_after_a_type_change_executemany_and_callproc_fail_once_then_run_on_a_new_connection(committed_tenant, entry):
    """The cursor's other entry points that run prepared statements: `executemany` (psycopg prepares its statement on
    the first call) and `callproc` (Django's SELECT * FROM the function) fail once after the type change too, and
    the next call runs on a new connection (they failed until DB_CONN_MAX_AGE replaced it)."""
    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}}
    backend = load_backend(settings["ENGINE"])
    web, migrator = backend.DatabaseWrapper(settings, alias="web"), backend.DatabaseWrapper(settings, alias="migrator")
    schema = committed_tenant.schema_name
    table, function = f'"{schema}".stale_plan_probe', f'"{schema}".stale_plan_probe_name'

    def run() -> object:
        with web.cursor() as cursor:
            if entry == "executemany":
                cursor.executemany(f"UPDATE {table} SET name = name WHERE id = %s RETURNING name", [[1]])
                return "ran"
            cursor.callproc(sql.Identifier(schema, "stale_plan_probe_name"))
            return cursor.fetchone()[0]

    try:
        with migrator.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name varchar(10))")
            cursor.execute(f"INSERT INTO {table} VALUES (1, 'Ada')")
            cursor.execute(f"CREATE FUNCTION {function}() RETURNS varchar LANGUAGE sql AS $$ SELECT 'Ada' $$")
        for _ in range(6):
            run()
        with migrator.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(40)")
            cursor.execute(f"DROP FUNCTION {function}()")
            cursor.execute(f"CREATE FUNCTION {function}() RETURNS text LANGUAGE sql AS $$ SELECT 'Ada' $$")
        with pytest.raises(NotSupportedError, match="cached plan must not change result type"):
            run()
        assert [run() for _ in range(6)] == ["ran" if entry == "executemany" else "Ada"] * 6
    finally:
        with migrator.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {function}()")
        web.close()
        migrator.close()


def test_a_server_side_cursor_is_never_prepared_so_a_type_change_never_fails_it(committed_tenant):
    """`.iterator()` reads through a server-side cursor: psycopg declares it afresh each time (never prepared), so
    after the type change it reads the new type at once."""
    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True, "prepare_threshold": 5}}
    backend = load_backend(settings["ENGINE"])
    web, migrator = backend.DatabaseWrapper(settings, alias="web"), backend.DatabaseWrapper(settings, alias="migrator")
    table = f'"{committed_tenant.schema_name}".stale_plan_probe'
    select = f"SELECT name FROM {table} WHERE id = %s"

    def read() -> str:
        with web.chunked_cursor() as cursor:
            cursor.execute(select, [1])
            return cursor.fetchone()[0]

    try:
        with migrator.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name varchar(10))")
            cursor.execute(f"INSERT INTO {table} VALUES (1, 'Ada')")
        assert [read() for _ in range(6)] == ["Ada"] * 6
        with migrator.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN name TYPE varchar(40)")
        assert read() == "Ada"
        with web.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%stale_plan%"])
            assert cursor.fetchone()[0] == 0
    finally:
        with migrator.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        web.close()
        migrator.close()


def test_a_migration_replayed_schema_after_schema_lands_in_each_schema_once_its_statements_are_prepared(db):
    """platform_migrate replays the same SQL text in schema after schema: past the threshold the statements are
    prepared, and each run still applies to the schema on the search_path at the time."""
    from tenants.migrating import migration_replay

    connection.ensure_connection()
    session = connection.connection
    saved = session.cursor_factory, session.prepare_threshold
    session.cursor_factory, session.prepare_threshold = preparing_cursor(), 5
    schemas = [f"prepared_replay_{n}" for n in range(8)]
    try:
        with connection.cursor() as cursor:
            for schema in schemas:
                cursor.execute(f'CREATE SCHEMA "{schema}"')
                cursor.execute(
                    f'CREATE TABLE "{schema}".django_migrations (LIKE public.django_migrations INCLUDING ALL)'
                )
                cursor.execute(f'CREATE TABLE "{schema}".probe (a int)')
        statements = ["CREATE INDEX probe_a ON probe (a)", "COMMENT ON TABLE probe IS 'replayed'"]
        for schema in schemas:
            migration_replay(schema=schema, applied=[("core", "9999_probe")], statements=statements)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [statements[0]])
            assert cursor.fetchone()[0] == 1
            landed = []
            for schema in schemas:
                cursor.execute(
                    f"SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'probe_a'), "
                    f"obj_description('\"{schema}\".probe'::regclass), "
                    f'(SELECT count(*) FROM "{schema}".django_migrations WHERE name = %s)',
                    [schema, "9999_probe"],
                )
                landed.append(cursor.fetchone())
    finally:
        session.cursor_factory, session.prepare_threshold = saved
    assert landed == [(1, "replayed", 1)] * len(schemas)
