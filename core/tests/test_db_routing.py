"""The replica router (core/db_routing.py): which statements on the primary send the rest of a request's reads back
to the primary, a replica that is down, and the replay-lag check. The real replica's behaviour (a streaming replica
whose replay is paused) is scale/test_replica.py's."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from django.db import connection, connections
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from core import db_routing
from core.db_routing import statement_writes


def test_a_with_whose_ctes_write_is_a_write_and_plain_reads_are_not():
    assert statement_writes("WITH account AS (UPDATE funds_ledgeraccount SET balance = 1 RETURNING id) SELECT id")
    assert statement_writes("with moved as (delete from d returning *) insert into r select * from moved")
    assert statement_writes("  INSERT INTO t VALUES (1)") and statement_writes("CREATE SCHEMA s")
    assert not statement_writes("WITH t AS (SELECT 1) SELECT * FROM t")
    assert not statement_writes("SELECT 1") and not statement_writes("SET search_path = x")


def test_a_data_modifying_with_on_the_primary_sends_later_reads_to_the_primary(db):
    """Through the wrapper every primary connection gets when replicas are configured, on a real statement."""
    db_routing.request_started()
    with connection.execute_wrapper(db_routing._note_writes), connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE routing_probe (n int)")
        db_routing.request_started()
        cursor.execute("WITH t AS (SELECT 1 AS n) SELECT n FROM t")
        assert db_routing._wrote.get() is False
        cursor.execute("WITH added AS (INSERT INTO routing_probe VALUES (1) RETURNING n) SELECT n FROM added")
        assert cursor.fetchone() == (1,)
        assert db_routing._wrote.get() is True
        with db_routing.reads_from_replica():
            assert db_routing.ReplicaRouter().db_for_read(object) is None  # the primary, whatever replicas exist
    db_routing.request_started()


@pytest.fixture
def dead_replica(monkeypatch):
    """A replica alias whose server is not there (a closed port on loopback), as a replica that went down."""
    from resilience.stack import free_port

    alias = "replica9"
    config = {**connections.settings["default"], "PORT": str(free_port()), "TEST": {"MIRROR": None}}
    connections.settings[alias] = config
    monkeypatch.setattr(db_routing, "replica_aliases", lambda: [alias])  # as DATABASE_REPLICA_URLS would list it
    db_routing._down_until.pop(alias, None)
    yield alias
    db_routing._down_until.pop(alias, None)
    if hasattr(connections._connections, alias):
        connections[alias].close()
        del connections[alias]
    connections.settings.pop(alias, None)


def test_a_replica_that_is_down_sends_its_reads_to_the_primary_and_says_so(committed_tenant, dead_replica, caplog):
    """Outside a test transaction (a list in a transaction reads the primary anyway), as a real request runs."""
    from tenants.services import api_key_create

    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=committed_tenant)[1]}")
    connection.set_schema_to_public()
    body = {"external_id": "e-1", "name": "Ada", "email": "ada@example.com"}
    assert client.post("/api/v1/people", body, content_type="application/json").status_code == 201
    with caplog.at_level(logging.WARNING, logger="core.db_routing"):
        listed = client.get("/api/v1/people")
        assert client.get("/api/v1/people").status_code == 200  # within the retry period: not tried again
    assert listed.status_code == 200, listed.content
    assert [person["email"] for person in listed.json()["results"]] == ["ada@example.com"]
    warnings = [record for record in caplog.records if getattr(record, "event", "") == "db.replica_unavailable"]
    assert len(warnings) == 1 and warnings[0].alias == dead_replica


@pytest.fixture
def second_connection_replica(monkeypatch):
    """A replica alias that is a second connection to the same database (what a caught-up replica holds)."""
    alias = "replica8"
    connections.settings[alias] = {**connections.settings["default"], "TEST": {"MIRROR": None}}
    monkeypatch.setattr(db_routing, "replica_aliases", lambda: [alias])
    db_routing._lag_checked.pop(alias, None)
    yield alias
    db_routing._lag_checked.pop(alias, None)
    db_routing._down_until.pop(alias, None)
    if hasattr(connections._connections, alias):
        connections[alias].close()
        del connections[alias]
    connections.settings.pop(alias, None)


def test_the_replica_connection_follows_each_keys_schema_so_a_sandbox_key_never_lists_live_rows(
    committed_tenant, second_connection_replica
):
    """One replica connection serves a live key, then the sandbox key, then the live key again: each list is its
    own schema's, read on the replica (attacker review: a sandbox key must not reach live data this way)."""
    from tenants.services import api_key_create

    live = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=committed_tenant)[1]}")
    sandbox_twin = type(committed_tenant).objects.get(pk=committed_tenant.pk).sandbox
    sandbox = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=sandbox_twin)[1]}")
    connection.set_schema_to_public()
    body = {"external_id": "live-1", "name": "Live Person", "email": "live@example.com"}
    assert live.post("/api/v1/people", body, content_type="application/json").status_code == 201

    def listed(client: Client) -> tuple[list[str], int]:
        with CaptureQueriesContext(connections[second_connection_replica]) as on_replica:
            response = client.get("/api/v1/people")
        assert response.status_code == 200, response.content
        return [person["external_id"] for person in response.json()["results"]], len(on_replica)

    people, replica_reads = listed(live)
    assert people == ["live-1"] and replica_reads > 0
    assert listed(sandbox)[0] == []  # its first use writes last_used_at: read on the primary
    people, replica_reads = listed(sandbox)
    assert people == [] and replica_reads > 0
    assert listed(live)[0] == ["live-1"]


@pytest.fixture
def clock(monkeypatch):
    """The router's monotonic clock, moved by hand (the lag check's interval without sleeping)."""
    now = [1000.0]
    monkeypatch.setattr(db_routing, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _lag_queries(captured) -> int:
    return len([q for q in captured if "pg_last_wal_replay_lsn" in q["sql"]])


def test_a_caught_up_replica_measures_no_lag_once_a_second_and_keeps_serving_lists(
    committed_tenant, second_connection_replica, clock
):
    """The lag query on real PostgreSQL: this "replica" is the primary (no WAL received), which reads as 0 lag even
    under a limit of a millisecond; it is measured once per LAG_CHECK_SECONDS, not per request."""
    from tenants.services import api_key_create

    assert db_routing.replica_lag(connections[second_connection_replica]) == 0.0
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=committed_tenant)[1]}")
    connection.set_schema_to_public()
    body = {"external_id": "e-1", "name": "Ada", "email": "ada@example.com"}
    assert client.post("/api/v1/people", body, content_type="application/json").status_code == 201
    with (
        override_settings(REPLICA_MAX_LAG_SECONDS=0.001),
        CaptureQueriesContext(connections[second_connection_replica]) as on_replica,
    ):
        for _ in range(3):
            listed = client.get("/api/v1/people")
            assert [person["external_id"] for person in listed.json()["results"]] == ["e-1"]
        assert _lag_queries(on_replica) == 1 and len(on_replica) > 1  # one lag query, and the lists' reads
        clock[0] += db_routing.LAG_CHECK_SECONDS
        assert client.get("/api/v1/people").status_code == 200
        assert _lag_queries(on_replica) == 2  # the measurement expired: measured again


def test_a_replica_found_lagging_is_passed_over_until_a_check_finds_it_within_the_limit(
    committed_tenant, second_connection_replica, clock, monkeypatch, caplog
):
    """Lag simulated at `replica_lag`, the one function that measures it (a replica mirroring the primary cannot
    lag); scale/test_replica.py pauses a real replica's replay instead."""
    from tenants.services import api_key_create

    lag = [45.0]
    monkeypatch.setattr(db_routing, "replica_lag", lambda replica: lag[0])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=committed_tenant)[1]}")
    connection.set_schema_to_public()
    body = {"external_id": "e-1", "name": "Ada", "email": "ada@example.com"}
    assert client.post("/api/v1/people", body, content_type="application/json").status_code == 201

    def listed() -> int:
        """The people listed (checked), and the statements the list sent to the replica."""
        with CaptureQueriesContext(connections[second_connection_replica]) as on_replica:
            response = client.get("/api/v1/people")
        assert [person["external_id"] for person in response.json()["results"]] == ["e-1"]
        return len(on_replica)

    def lagging() -> list[logging.LogRecord]:
        return [record for record in caplog.records if getattr(record, "event", "") == "db.replica_lagging"]

    with caplog.at_level(logging.WARNING, logger="core.db_routing"):
        assert listed() == 0 and listed() == 0  # 45 s behind the default 30 s: the primary's
        assert len(lagging()) == 1  # once per check, not per request
        assert lagging()[0].alias == second_connection_replica and lagging()[0].lag_seconds == 45.0
        clock[0] += db_routing.LAG_CHECK_SECONDS
        assert listed() == 0 and len(lagging()) == 2  # checked again, still behind
        with override_settings(REPLICA_MAX_LAG_SECONDS=0):  # the check turned off: the replica serves
            assert listed() > 0
        lag[0] = 2.0
        assert listed() == 0  # until the measurement expires, the last one holds
        clock[0] += db_routing.LAG_CHECK_SECONDS
        assert listed() > 0 and len(lagging()) == 2  # within the limit again: used, nothing logged
    assert not [record for record in caplog.records if getattr(record, "event", "") == "db.replica_unavailable"]


def test_a_lag_query_that_fails_marks_the_replica_down_and_the_read_goes_to_the_primary(
    committed_tenant, second_connection_replica, caplog
):
    """A replica whose server dropped the connection this process held (its backend terminated, as by a replica
    restart): connecting is not retried, the lag query really fails, and the read goes to the primary."""
    replica = connections[second_connection_replica]
    replica.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [replica.connection.info.backend_pid])
        assert cursor.fetchone() == (True,)
    db_routing.request_started()
    with caplog.at_level(logging.WARNING, logger="core.db_routing"), db_routing.reads_from_replica():
        assert db_routing.ReplicaRouter().db_for_read(object) is None
        assert db_routing.ReplicaRouter().db_for_read(object) is None  # within the retry period: not tried
    down = [record for record in caplog.records if getattr(record, "event", "") == "db.replica_unavailable"]
    assert len(down) == 1 and down[0].alias == second_connection_replica
    assert replica.connection is None  # closed: the retry starts from a new connection
