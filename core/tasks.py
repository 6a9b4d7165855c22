"""Platform tasks: worker heartbeat (for /readyz) and a schema probe used by tests and operators."""

from __future__ import annotations

import socket
import time
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready

from core.db import connection
from core.health import WORKER_HEARTBEAT_KEY
from core.redis import get_redis


def _record_heartbeat(hostname: str) -> None:
    get_redis().hset(WORKER_HEARTBEAT_KEY, hostname, str(time.time()))


@shared_task(bind=True, name="core.tasks.worker_heartbeat")
def worker_heartbeat(self: Task) -> None:
    """Sent by beat every 15 s; whichever worker takes it records that workers are consuming.

    Keyed by the worker's node name (as at start-up), so one worker is never counted twice in /readyz.
    """
    _record_heartbeat(self.request.hostname or socket.gethostname())


@worker_ready.connect
def _on_worker_ready(sender: object = None, **kwargs: Any) -> None:
    _record_heartbeat(getattr(sender, "hostname", None) or socket.gethostname())


@shared_task(name="core.tasks.schema_probe")
def schema_probe(probe_id: str) -> str:
    """Records which schema the task ran in, so a test (or an operator) can check tenant routing."""
    schema = connection.schema_name
    get_redis().set(f"rp:probe:{probe_id}", schema, ex=300)
    return schema
