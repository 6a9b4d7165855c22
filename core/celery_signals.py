"""One structured log line per Celery task, with the tenant schema and task id (never arguments)."""

from __future__ import annotations

import logging
import time

from celery.signals import task_postrun, task_prerun
from django.db import connection

from core import context

logger = logging.getLogger("rewards_portal.task")
_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    _started[task_id] = time.perf_counter()
    context.clear()
    context.bind(task_id=task_id, task=getattr(task, "name", None), tenant=connection.schema_name)


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    logger.info(
        "task",
        extra={
            "state": state,
            "tenant": connection.schema_name,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        },
    )
    context.clear()
