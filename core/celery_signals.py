"""One structured log line per Celery task, with the tenant schema and task id (never arguments)."""

from __future__ import annotations

import logging
import time

from celery.signals import task_postrun, task_prerun
from django.db import connection
from tenant_schemas_celery.app import get_schema_name_from_task

from core import context

logger = logging.getLogger("rewards_portal.task")
_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    _started[task_id] = time.perf_counter()
    context.clear()
    # The schema the task was sent from (tenant_schemas_celery's header), else the one it runs in.
    schema = get_schema_name_from_task(task, kwargs.get("kwargs") or {}) if task is not None else None
    context.bind(task_id=task_id, task=getattr(task, "name", None), tenant=schema or connection.schema_name)


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    # No `tenant` here: tenant_schemas_celery's own postrun receiver has already put the connection back on the
    # public schema, so the tenant bound when the task started is the one the line must carry.
    logger.info(
        "task",
        extra={
            "state": state,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        },
    )
    context.clear()
