"""Worker and beat log like the web: one JSON object per line, secrets redacted (Celery's own handler is not used)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from core.redis import get_redis
from core.tasks import schema_probe
from testsupport.waiting import wait_for
from testsupport.workers import subprocess_env, worker_database_url

ROOT = Path(__file__).resolve().parents[2]
# A live API key as it would appear in an error message: the redaction filter must catch it in a worker line.
LEAKED_KEY = "rp_live_abcdefghijkl_NotForTheLogs0123456789"


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed as JSON (a line that is not JSON fails the test, naming it)."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


@pytest.mark.worker
def test_worker_lines_are_json_with_secrets_redacted(committed_tenant, celery_worker_process):
    start = len(celery_worker_process.log_text())
    schema = f"gone_{LEAKED_KEY}"
    schema_probe.apply_async(args=[uuid.uuid4().hex], headers={"_schema_name": schema})
    after = uuid.uuid4().hex
    with tenant_context(committed_tenant):
        schema_probe.delay(after)  # queued behind it: once this ran, the first one was taken
    wait_for(lambda: get_redis().get(f"rp:probe:{after}"))
    wait_for(lambda: "task.tenant_missing" in celery_worker_process.log_text()[start:])
    logged = celery_worker_process.log_text()[start:]
    lines = json_lines(logged)
    [dropped] = [line for line in lines if line.get("event") == "task.tenant_missing"]
    assert dropped["level"] == "warning" and dropped["task"] == "core.tasks.schema_probe"
    assert "rp_live_[REDACTED]" in dropped["msg"] and dropped["tenant_schema"] == "gone_rp_live_[REDACTED]"
    assert LEAKED_KEY not in logged and "NotForTheLogs" not in logged
    received = [line for line in lines if line["logger"] == "celery.worker.strategy"]
    assert received and all("args" not in line["data"] and "kwargs" not in line["data"] for line in received)
    # our task line for the probe that ran, with its tenant, from the same formatter
    assert any(line["msg"] == "task" and line.get("tenant") == committed_tenant.schema_name for line in lines)


def test_beat_lines_are_json(django_db_setup, tmp_path):
    # A schedule of its own, to a queue no worker reads: the real one would send every sweep into this run's queues.
    queue = f"beat-log-test-{uuid.uuid4().hex[:8]}"
    schedule = {f"probe-{queue}": {"task": "core.tests.beat_probe", "schedule": 60.0, "options": {"queue": queue}}}
    env = subprocess_env(TEST_BEAT_SCHEDULE=json.dumps(schedule))
    stderr_path = tmp_path / "beat.err"
    command = [sys.executable, "-m", "celery", "-A", "rewards_portal", "beat", "-l", "info"]
    command += ["--pidfile="]
    with open(stderr_path, "w") as stderr:
        beat = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.time() + 30

            def started() -> bool:
                # Past its start and its lock (core.beat): the first periods are being sent.
                return "leading" in stderr_path.read_text()

            while not started() and beat.poll() is None and time.time() < deadline:
                time.sleep(0.1)
        finally:
            beat.terminate()
            beat.wait(timeout=15)
    get_redis().delete(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + queue)
    lines = json_lines(stderr_path.read_text())  # the start banner goes to stdout; every log line is JSON
    assert any(line["logger"] == "celery.beat" and "Starting" in line["msg"] for line in lines), lines


DEV_MAIL = """
import django
django.setup()
from django.core.mail import send_mail
send_mail("A gift", "Your code: CODE-1234-5678 PIN 9999. Claim: http://alpha.localhost:8000/r/AbCdEfGhIjKlMnOpQrStUv",
          "rewards@localhost", ["ada@example.com"])
"""


def _run_with_dev_settings(script: str, var_dir: Path) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter with `make dev`'s settings (its logging, its mail), on the test servers."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.dev",
        RP_VAR_DIR=str(var_dir),
        DATABASE_URL=worker_database_url(),
        REDIS_URL=settings.REDIS_URL,
    )
    env.pop("EMAIL_BACKEND", None)
    return subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_dev_mail_goes_to_files_under_var_not_into_the_log(tmp_path):
    """`make dev` used the console mail backend: every code, PIN and claim link was printed into the web and
    worker logs. Dev mail is now written to files under var/mail/ (where a developer opens the claim link)."""
    result = _run_with_dev_settings(DEV_MAIL, tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "CODE-1234" not in output and "/r/AbCdEf" not in output
    [mail] = (tmp_path / "mail").iterdir()
    assert "CODE-1234-5678" in mail.read_text() and "/r/AbCdEfGhIjKlMnOpQrStUv" in mail.read_text()


DJANGO_LINES = """
import django, logging
django.setup()
logging.getLogger("django.security.csrf").warning(
    "Forbidden (CSRF cookie not set.): %s", "/r/AbCdEfGhIjKlMnOpQrStUv/reveal"
)
logging.getLogger("django.server").warning('"GET /r/AbCdEfGhIjKlMnOpQrStUvWx HTTP/1.1" 404 179')
"""


def test_djangos_own_lines_are_json_and_redacted_in_dev(tmp_path):
    """runserver's 4xx access lines and the CSRF refusal named live claim tokens in plain text in the dev log."""
    result = _run_with_dev_settings(DJANGO_LINES, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert {line["logger"] for line in lines} == {"django.security.csrf", "django.server"}, lines
    assert "AbCdEf" not in result.stdout + result.stderr
