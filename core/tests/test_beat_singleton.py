"""Two real `celery beat` processes, one schedule: each period is published once, by the leader; kill -9 the leader
and the standby publishes the following periods (core.beat.LeaderScheduler).

The schedule's messages go to a queue of the test's own that no worker consumes, so the test counts exactly what
the beats published: one message per (entry, period), its task id naming the period, its origin the process."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from core.redis import get_redis
from testsupport.waiting import wait_for
from testsupport.workers import subprocess_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    settings.CELERY_BROKER_URL.startswith("amqp"), reason="reads the published messages from the Redis broker"
)


def queue_key(queue: str) -> str:
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + queue


def published(queue: str) -> list[dict]:
    """Every message waiting in `queue` (oldest first): its entry, period and publishing process id."""
    messages = []
    for raw in reversed(get_redis().lrange(queue_key(queue), 0, -1)):  # kombu pushes on the left
        headers = json.loads(raw)["headers"]
        name, slot = headers["id"].rsplit(":", 1)
        messages.append({"entry": name.split(":", 1)[1], "slot": int(slot), "pid": headers["origin"].split("@")[0]})
    return messages


def start_beat(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "rewards_portal", "beat", "-l", "info", "--pidfile="]
    with open(log, "w") as stderr:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)


def test_two_beats_publish_each_period_once_and_the_standby_takes_over_from_a_killed_leader(db, tmp_path):
    run = uuid.uuid4().hex[:8]
    queue = f"beat-test-{run}"
    fast, slow = f"every-second-{run}", f"every-2s-{run}"
    schedule = {
        fast: {"task": "core.tests.beat_probe", "schedule": 1.0, "options": {"queue": queue}},
        slow: {"task": "core.tests.beat_probe", "schedule": 2.0, "options": {"queue": queue}},
    }
    env = subprocess_env(
        TEST_BEAT_SCHEDULE=json.dumps(schedule), BEAT_STANDBY_POLL_SECONDS="0.3", BEAT_LEASE_SECONDS="15"
    )
    beats = [start_beat(env, tmp_path / "beat-a.log"), start_beat(env, tmp_path / "beat-b.log")]
    by_pid = {f"gen{beat.pid}": beat for beat in beats}
    try:
        # Both beats run the same schedule; one leads. Three periods of the 1 s entry.
        first = wait_for(
            lambda: [m for m in published(queue) if m["entry"] == fast][2:] and published(queue),
            timeout=60,
            message="the leader's first three periods",
        )
        [leader_pid] = {m["pid"] for m in first}
        leader = by_pid[leader_pid]
        [standby] = [beat for beat in beats if beat is not leader]
        assert standby.poll() is None, (tmp_path / "beat-b.log").read_text()[-2000:]

        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        sent_by_leader = len(published(queue))

        # The standby takes the lock once the dead leader's session is gone, and goes on from its last period.
        wait_for(
            lambda: len([m for m in published(queue)[sent_by_leader:] if m["entry"] == fast]) >= 3,
            timeout=60,
            message="the standby's first three periods after the leader was killed",
        )
    finally:
        for beat in beats:
            if beat.poll() is None:
                beat.terminate()
                beat.wait(timeout=15)

    messages = published(queue)
    # Never a period twice, from either beat: every (entry, period) appears once.
    doubled = [key for key, count in Counter((m["entry"], m["slot"]) for m in messages).items() if count > 1]
    assert doubled == [], messages
    # Until it was killed only the leader published; after it only the standby, each entry's periods going on
    # from where the leader's ended.
    before, after = messages[:sent_by_leader], messages[sent_by_leader:]
    assert {m["pid"] for m in before} == {leader_pid}
    assert {m["pid"] for m in after} == {f"gen{standby.pid}"}
    for entry in (fast, slow):
        leader_slots = [m["slot"] for m in before if m["entry"] == entry]
        standby_slots = [m["slot"] for m in after if m["entry"] == entry]
        assert leader_slots == sorted(leader_slots) and standby_slots == sorted(standby_slots)
        if leader_slots and standby_slots:
            assert standby_slots[0] > leader_slots[-1]
    # The table holds each entry's last period, claimed by the process that published it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_slot FROM public.core_beat_entry WHERE name = %s", [fast])
        assert cursor.fetchone()[0] == max(m["slot"] for m in messages if m["entry"] == fast)
    # The message a worker would run is the scheduled task, as beat always sent it.
    body = json.loads(get_redis().lrange(queue_key(queue), 0, 0)[0])
    assert json.loads(base64.b64decode(body["body"]))[0] == []
    assert "leading" in (tmp_path / "beat-b.log").read_text() + (tmp_path / "beat-a.log").read_text()
    get_redis().delete(queue_key(queue))
