"""The replica router's write detection (core/db_routing.py): which statements on the primary send the rest of a
request's reads back to the primary. The real replica's behaviour is scale/test_replica.py's."""

from __future__ import annotations

from django.db import connection

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
