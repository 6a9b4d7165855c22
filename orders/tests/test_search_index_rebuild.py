"""orders 0026 rebuilds each schema's trigram search index under running processes: while the new index builds
(the writes of the tenant's rewards wait for it), reads of the tenant's rewards go on."""

from __future__ import annotations

import importlib
import threading

import pytest
from django.db import connection
from django.db.utils import load_backend

from testsupport.waiting import wait_for

rebuild = importlib.import_module("orders.migrations.0026_search_index_without_reference")


def _waiting_for_a_lock(db, pid: int) -> bool:
    with db.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [pid])
        return cursor.fetchone()[0]


def test_reads_of_a_tenants_rewards_go_on_while_its_search_index_is_rebuilt(committed_tenant):
    schema = committed_tenant.schema_name
    backend = load_backend(connection.settings_dict["ENGINE"])
    dbs = {name: backend.DatabaseWrapper(connection.settings_dict, alias=name) for name in
           ("admin", "writer", "migrator", "reader")}  # fmt: skip
    admin, writer, migrator, reader = dbs.values()
    for db in (migrator, reader):  # connected here, used by a thread of its own
        db.inc_thread_sharing()
        db.ensure_connection()
    [forward] = [op.sql for op in rebuild.Migration.operations]
    [reverse] = [op.reverse_sql for op in rebuild.Migration.operations]
    with admin.cursor() as cursor:
        cursor.execute(f'SET search_path = "{schema}", public')
        cursor.execute(reverse)  # the index as it was before 0026
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'reward_search_trgm'",
                       [schema])  # fmt: skip
        before = cursor.fetchone()
    if before is None:
        pytest.skip("no pg_trgm here: the schema has prefix indexes, which 0026 leaves alone")
    assert "substr(" not in before[0]
    done: dict[str, object] = {}

    def run(name, db, statements):
        try:
            with db.cursor() as cursor:
                db.set_autocommit(False)
                cursor.execute(f'SET LOCAL search_path = "{schema}", public')
                for statement in statements:
                    cursor.execute(statement)
                done[name] = cursor.fetchall() if cursor.description else True
            db.commit()
        except Exception as exc:  # reported by the assertions below
            done[name] = exc

    try:
        # A request writing a reward holds its lock on the table: the rebuild waits behind it, as in production.
        writer.set_autocommit(False)
        with writer.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{schema}".orders_reward IN ROW EXCLUSIVE MODE')
        migrating = threading.Thread(target=run, args=("migrator", migrator, [forward]))
        migrating.start()
        wait_for(lambda: _waiting_for_a_lock(admin, migrator.connection.info.backend_pid), message="0026 waiting")
        reading = threading.Thread(target=run, args=("reader", reader, ["SELECT count(*) FROM orders_reward"]))
        reading.start()
        # The read either answers or queues behind the rebuild: whichever happens first.
        wait_for(lambda: "reader" in done or _waiting_for_a_lock(admin, reader.connection.info.backend_pid),
                 message="the read answered or waiting")  # fmt: skip
        assert done.get("reader") == [(0,)], "a read of the rewards waited for the index rebuild"
    finally:
        writer.rollback()
        for thread in (migrating, reading) if "reading" in locals() else (migrating,):
            thread.join(timeout=60)
        for db in dbs.values():
            db.close()
    assert done["migrator"] is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'reward_search_trgm'",
                       [schema])  # fmt: skip
        assert "substr(" in cursor.fetchone()[0]
