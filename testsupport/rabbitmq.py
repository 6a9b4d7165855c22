"""The machine's RabbitMQ for `make test-scale`: is it here, and a throwaway virtual host per run.

A virtual host of its own keeps a run's queues apart from any other run's and from anything else on the broker;
it is created and deleted with `rabbitmqctl` (root on the broker's machine), which also stops and starts the
broker's application for the outage test.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

HOST, PORT = "127.0.0.1", 5672
USER, PASSWORD = "guest", "guest"


def unavailable_reason() -> str | None:
    """None when RabbitMQ answers on 127.0.0.1:5672 and rabbitmqctl can manage it; else why not."""
    if not shutil.which("rabbitmqctl"):
        return "rabbitmqctl is not installed (no RabbitMQ on this machine)"
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            pass
    except OSError:
        return f"nothing listens on {HOST}:{PORT}"
    if ctl("list_vhosts", check=False).returncode:
        return "rabbitmqctl cannot reach the broker (not root?)"
    return None


def ctl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout[-1000:]}{done.stderr[-1000:]}")
    return done


@contextmanager
def vhost(prefix: str = "rp_test") -> Iterator[str]:
    """A fresh virtual host; yields its broker URL; deleted (with its queues) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, USER, ".*", ".*", ".*")
        yield f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{name}"
    finally:
        ctl("delete_vhost", name, check=False)


def stop_app() -> None:
    ctl("stop_app")


def start_app() -> None:
    ctl("start_app")
    ctl("await_startup", check=False)
