"""Read replicas (core/db_routing.py) against a real streaming replica: a private primary initdb'd from the
embedded server's binaries, `pg_basebackup -R` into a second data directory, started on another port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from testsupport.workers import ROOT, subprocess_env

pytestmark = pytest.mark.scale


def probe(primary_and_replica: tuple[str, str], *args: str, **env: str) -> dict:
    """scale/replica_probe.py in a process of its own, on the primary and its replica: its JSON line."""
    primary_url, replica_url = primary_and_replica
    environment = subprocess_env(DATABASE_URL=primary_url, DATABASE_REPLICA_URLS=replica_url, **env)
    if "REPLICA_MAX_LAG_SECONDS" not in env:
        environment.pop("REPLICA_MAX_LAG_SECONDS", None)
    done = subprocess.run(
        [sys.executable, "-m", "scale.replica_probe", *args], env=environment, cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[str, str]]:
    from resilience.stack import RESILIENCE_VAR, PrivatePostgres, free_port

    base = RESILIENCE_VAR / f"replica-{os.getpid()}-{uuid.uuid4().hex[:6]}"  # the server's user must reach it
    base.mkdir(parents=True)
    primary = PrivatePostgres(base)
    replica_dir = primary.data.parent / "replica"
    replica_port = free_port()
    try:
        primary._run(
            primary.bin / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", replica_dir, "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        # A hot standby needs at least the primary's max_connections (the private primary runs with 200).
        options = (
            f"-p {replica_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
        )
        primary._run(primary.bin / "pg_ctl", "-D", replica_dir, "-l", replica_dir / "log", "-o", options, "-w", "start")
        env = subprocess_env(DATABASE_URL=primary.url)
        done = subprocess.run(
            [sys.executable, "manage.py", "platform_migrate", "-v0"], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        yield primary.url, f"postgresql://postgres@127.0.0.1:{replica_port}/rp"
    finally:
        primary._run(primary.bin / "pg_ctl", "-D", replica_dir, "-m", "immediate", "stop", check=False)
        primary.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_lists_and_reports_read_the_replica_and_a_request_that_wrote_reads_the_primary(primary_and_replica):
    result = probe(primary_and_replica)  # the default REPLICA_MAX_LAG_SECONDS (30 s): a paused replica still serves
    ids, replica_queries, primary_order_reads = result["caught_up"]
    assert ids == ["first"] and replica_queries > 0 and primary_order_reads == 0, result
    ids, replica_queries, _ = result["stale"]
    assert ids == ["first"] and replica_queries > 0, result  # the replica's replay is paused: the list is its view
    rewards, replica_queries, primary_rollup_reads = result["stale_report"]
    assert rewards == 1 and replica_queries > 0 and primary_rollup_reads == 0, result  # the report is the replica's
    assert result["after_write"] == ["first", "second"], result  # after a write, reads go to the primary
    print(f"\n[scale] read replica: {json.dumps(result)}")


def test_a_replica_further_behind_than_the_limit_is_passed_over_until_it_catches_up(primary_and_replica):
    result = probe(primary_and_replica, "lagging", REPLICA_MAX_LAG_SECONDS="1")
    # Caught up, its last replayed commit older than the limit (the primary idle): measured as 0 behind, and the
    # list is the replica's.
    ids, replica_order_reads, primary_order_reads = result["idle"]
    assert result["idle_for"] > 1 and result["idle_lag"] == 0, result
    assert ids == ["first"] and replica_order_reads > 0 and primary_order_reads == 0, result
    # Replay paused, a second order committed, the replica more than 1 s behind: the list is the primary's.
    ids, replica_order_reads, primary_order_reads = result["behind"]
    assert result["paused_lag"] > 1, result
    assert ids == ["first", "second"] and replica_order_reads == 0 and primary_order_reads > 0, result
    [(_event, alias, lag)] = result["warnings"]  # once for the request's one check
    assert alias == "replica0" and lag > 1, result
    # Replay resumed: the next check finds it within the limit, and the list is the replica's again.
    ids, replica_order_reads, primary_order_reads = result["resumed"]
    assert ids == ["first", "second"] and replica_order_reads > 0 and primary_order_reads == 0, result
    assert result["resumed_warnings"] == 0 and result["unavailable"] == [], result
    print(f"\n[scale] lagging read replica: {json.dumps(result)}")
