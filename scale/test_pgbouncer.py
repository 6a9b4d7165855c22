"""django-tenants behind PgBouncer in transaction pooling mode (tenants/pooled_backend): two tenants' requests,
interleaved over ONE pooled server connection, never see or write each other's rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings

from testsupport.workers import ROOT, subprocess_env

pytestmark = pytest.mark.scale


def _probe(pooler, *args: str, pooling: bool) -> dict:
    env = subprocess_env(
        DATABASE_URL=pooler.url(settings.DATABASES["default"]["NAME"]),
        DB_TRANSACTION_POOLING="true" if pooling else "false",
        DB_CONN_MAX_AGE="60",
    )
    done = subprocess.run(
        [sys.executable, "-m", "scale.pooled_probe", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[:3000] + done.stderr[-3000:] + pooler.log()
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_tenants_interleaved_over_one_server_connection_never_cross(pooler):
    result = _probe(pooler, pooling=True)
    assert result["statement_mismatches"] == 0, result
    assert result["statuses"] == [[201, 200, 200]], result  # every write created, every read answered
    assert result["foreign_in_lists"] == 0, result
    for which in ("0", "1"):
        assert result["stored"][which] == {"orders": result["expected_per_tenant"], "foreign": []}, result
    pools = [row for row in pooler.show("SERVERS", "") if row[3] == settings.DATABASES["default"]["NAME"]]
    assert len(pools) <= 1, pools  # one server connection carried both tenants
    print(f"\n[scale] PgBouncer transaction pooling, 1 server connection: {json.dumps(result)}")


def test_the_stock_backend_crosses_tenants_through_the_same_pooler(pooler):
    """The control: django-tenants' session-level `SET search_path` through the same PgBouncer runs one tenant's
    statements in the other's schema (what the pooled backend prevents, and what the test above would catch)."""
    result = _probe(pooler, "--statements-only", pooling=False)
    assert result["statement_mismatches"] > 0, result
