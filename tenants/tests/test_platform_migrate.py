"""platform_migrate on schemas that are behind: one migrated by Django, the others replay its SQL; a re-run
finds nothing left to do."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from tenants.migrating import MigrationReplayError, migration_replay
from tenants.services import tenant_sandbox_ensure

# The latest migrations of two apps (the plan spans apps): one made an index, one added two columns, and the
# triggers each app's next one made.
MISSING = [
    ("webhooks", "0002_event_subject_index", "webhook_event_subject"),
    ("webhooks", "0003_due_notes", None),
    ("webhooks", "0004_metrics_notes", None),
    ("webhooks", "0005_event_id_pattern_index_unused", None),
    ("batches", "0005_error_file_cells", None),
    ("batches", "0006_due_notes", None),
    ("batches", "0007_due_approvals", None),
    ("batches", "0008_fk_index_covered", None),
    ("batches", "0009_row_reward_unconstrained", None),
    ("batches", "0010_row_hot_marking", None),
]
# What the others added, taken away again with their records.
UNDO = {
    "0005_error_file_cells": [
        'ALTER TABLE "{schema}".batches_batch DROP COLUMN header',
        'ALTER TABLE "{schema}".batches_batchrowerror DROP COLUMN cells',
    ],
    "0003_due_notes": [
        f'DROP TRIGGER tenant_due_{event} ON "{{schema}}".webhooks_webhookdelivery' for event in ("insert", "update")
    ],
    "0004_metrics_notes": ['DROP TRIGGER tenant_due_metrics ON "{schema}".webhooks_webhookdelivery'],
    "0005_event_id_pattern_index_unused": [
        'CREATE INDEX webhooks_event_id_136b0861_like ON "{schema}".webhooks_event (id varchar_pattern_ops)'
    ],
    "0007_due_approvals": [
        f'DROP TRIGGER tenant_due_approval_{event} ON "{{schema}}".batches_batch' for event in ("insert", "update")
    ],
    "0008_fk_index_covered": [
        'CREATE INDEX batches_batchrow_batch_id_b9015355 ON "{schema}".batches_batchrow (batch_id)'
    ],
    "0009_row_reward_unconstrained": [
        'ALTER TABLE "{schema}".batches_batchrow ADD CONSTRAINT batches_batchrow_reward_id_key UNIQUE (reward_id)'
    ],
    "0010_row_hot_marking": ['ALTER TABLE "{schema}".batches_batchrow RESET (fillfactor)'],
    "0006_due_notes": [
        f'DROP TRIGGER tenant_due_{event} ON "{{schema}}".batches_batch' for event in ("insert", "update")
    ],
}


def _state(schema: str) -> list[tuple[bool, bool]]:
    state = []
    with connection.cursor() as cursor:
        for app, name, index in MISSING:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", [schema, index])
            has_index = index is None or cursor.fetchone() is not None
            cursor.execute(f'SELECT 1 FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name])
            state.append((has_index, cursor.fetchone() is not None))
    return state


def test_schemas_missing_migrations_are_migrated_once_and_a_rerun_skips_them(committed_tenant):
    schemas = [committed_tenant.schema_name, tenant_sandbox_ensure(tenant=committed_tenant).schema_name]
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        for schema in schemas:  # as if the release that added these had not reached them yet
            for app, name, index in MISSING:
                if index:
                    cursor.execute(f'DROP INDEX "{schema}"."{index}"')
                for statement in UNDO.get(name, []):
                    cursor.execute(statement.format(schema=schema))
                cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name])
    assert [_state(schema) for schema in schemas] == [[(False, False)] + [(True, False)] * 9] * 2

    out = StringIO()
    call_command("platform_migrate", parallel=2, stdout=out)

    assert [_state(schema) for schema in schemas] == [[(True, True)] * 10] * 2
    with connection.cursor() as cursor:  # the indexes batches 0008, 0009 and webhooks 0005 drop are gone from both
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname IN ('batches_batchrow_batch_id_b9015355', "
                       "'batches_batchrow_reward_id_key', 'webhooks_event_id_136b0861_like') "
                       "AND schemaname = ANY(%s)", [schemas])  # fmt: skip
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = 'batches_batchrow' "
                       "AND relnamespace::regnamespace::text = ANY(%s) AND reloptions = '{fillfactor=50}'",
                       [schemas])  # fmt: skip
        assert cursor.fetchone()[0] == 2  # batches 0010's fillfactor, replayed too
    text = out.getvalue()
    assert "2 of " in text and "replayed 10 migration(s) in 1 schemas" in text, text
    again = StringIO()
    call_command("platform_migrate", parallel=2, stdout=again)
    assert "0 of " in again.getvalue(), again.getvalue()


def test_a_replay_that_fails_names_its_schema_and_applies_nothing_there(tenant_a):
    """At 3 a.m. the error says which schema and which migrations; the schema keeps no part of them."""
    schema = tenant_a.schema_name
    statements = ["CREATE TABLE replay_probe (n int)", "ALTER TABLE no_such_table ADD COLUMN n int"]
    with pytest.raises(MigrationReplayError) as failed:
        migration_replay(schema=schema, applied=[("webhooks", "9999_probe")], statements=statements)
    assert f"schema {schema} failed" in str(failed.value) and "webhooks.9999_probe" in str(failed.value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f'"{schema}".replay_probe'])
        assert cursor.fetchone() == (None,)
        cursor.execute(f'SELECT count(*) FROM "{schema}".django_migrations WHERE name = %s', ["9999_probe"])
        assert cursor.fetchone() == (0,)
