"""`make test-scale`: the suites that need the machine's own servers (never part of `make test`).

- RabbitMQ (127.0.0.1:5672, managed with rabbitmqctl): the worker suite with `CELERY_BROKER_URL=amqp://…` on a
  virtual host of its own, then the broker-outage test (resilience/test_broker_rabbitmq.py).
- PostgreSQL (127.0.0.1:5432) with PgBouncer installed, and the embedded server's binaries: the tests under scale/
  (transaction pooling with tenant schemas, a streaming read replica).

Each part whose servers are missing is skipped with a line saying which and why; the exit status is that of the
parts that ran (0 when all were skipped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testsupport import rabbitmq  # noqa: E402

# The tests that start real Celery workers (marked `worker`), minus those about Redis itself.
WORKER_SUITE = [
    "fulfillment/tests/test_worker_e2e.py",
    "webhooks/tests/test_end_to_end.py",
    "webhooks/tests/test_resilience.py",
    "batches/tests/test_worker.py",
    "core/tests/test_worker_logging.py",
    "observability/tests/test_metrics.py",
]


def run_tests(*args: str, env: dict[str, str] | None = None) -> int:
    command = [sys.executable, "scripts/run_tests.py", *args]
    return subprocess.call(command, cwd=ROOT, env={**os.environ, **(env or {})})


def main() -> int:
    results: list[tuple[str, str]] = []
    failed = False
    reason = rabbitmq.unavailable_reason()
    if reason:
        results.append(("RabbitMQ worker suite and broker outage", f"SKIPPED: {reason}"))
    else:
        started = time.monotonic()
        with rabbitmq.vhost("rp_scale") as broker_url:
            code = run_tests(*WORKER_SUITE, "-m", "worker", "-q", env={"CELERY_BROKER_URL": broker_url})
        failed |= code != 0
        results.append(
            ("worker suite on RabbitMQ", f"{'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
        )
        started = time.monotonic()
        code = run_tests("resilience/test_broker_rabbitmq.py", "-m", "scale", "-s", "-q")
        failed |= code != 0
        results.append(
            (
                "RabbitMQ restarted mid-delivery",
                f"{'passed' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s",
            )
        )
    started = time.monotonic()
    # The scale/ tests skip themselves, each naming what it misses (PgBouncer, the PostgreSQL on :5432).
    code = run_tests("scale", "-m", "scale", "-q", "-rs")
    failed |= code not in (0, 5)
    results.append(
        (
            "scale/ (PgBouncer, read replica)",
            f"{'passed or skipped' if code in (0, 5) else 'FAILED'} in {time.monotonic() - started:.0f} s",
        )
    )
    print("\nmake test-scale:")
    for name, outcome in results:
        print(f"  {name}: {outcome}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
