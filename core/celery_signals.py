"""Celery task plumbing: one structured log line per task (tenant schema, task id, the request id that queued
it; never arguments), the task's Prometheus metrics, and the headers that carry the request id to the worker."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from tenant_schemas_celery.app import get_schema_name_from_task

from core import context, db_routing
from core.db import connection
from core.metrics import TASK_RUNTIME, TASK_WAIT, TASKS

logger = logging.getLogger("rewards_portal.task")
_started: dict[str | None, float] = {}
# Message headers we add at publish time; Celery hands unknown headers to the task as `task.request.<name>`.
REQUEST_ID_HEADER = "rp_request_id"
PUBLISHED_AT_HEADER = "rp_published_at"
_QUEUES = {"default", "delivery", "webhooks", "bulk"}


@before_task_publish.connect
def _task_headers(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """The request (or task) that queues a task passes its request id on, so one id follows an order from the
    API call to its delivery in the worker's log lines; the publish time measures queueing delay."""
    if headers is None:
        return
    request_id = context.current().get("request_id")
    if request_id and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id
    headers.setdefault(PUBLISHED_AT_HEADER, time.time())


def _queue_of(task: Task | None) -> str:
    info = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    queue = info.get("routing_key") or ""
    return queue if queue in _QUEUES else "other"


def _observe_wait(task: Task, queue: str) -> None:
    published = getattr(task.request, PUBLISHED_AT_HEADER, None)
    if not isinstance(published, int | float):
        return
    # A task with a countdown/eta was not late while it waited for its time.
    start = float(published)
    eta = task.request.eta  # an ISO 8601 string in Celery's message protocol 2
    if isinstance(eta, str):
        try:
            start = max(start, datetime.fromisoformat(eta).timestamp())
        except ValueError:
            pass
    TASK_WAIT.labels(queue).observe(max(0.0, time.time() - start))


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Task | None = None, **kwargs: Any) -> None:
    _started[task_id] = time.perf_counter()
    context.clear()
    db_routing.request_started()
    # The schema the task was sent from (tenant_schemas_celery's header), else the one it runs in.
    schema = get_schema_name_from_task(task, kwargs.get("kwargs") or {}) if task is not None else None
    request_id = getattr(getattr(task, "request", None), REQUEST_ID_HEADER, None)
    context.bind(
        task_id=task_id,
        task=getattr(task, "name", None),
        tenant=schema or connection.schema_name,
        request_id=request_id if isinstance(request_id, str) else None,
    )
    if task is not None:
        _observe_wait(task, _queue_of(task))


@task_postrun.connect
def _task_finished(
    task_id: str | None = None, task: Task | None = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _started.pop(task_id, None)
    elapsed = time.perf_counter() - started if started else None
    name = getattr(task, "name", None) or "unknown"
    queue = _queue_of(task)
    TASKS.labels(name, queue, state or "UNKNOWN").inc()
    if elapsed is not None:
        TASK_RUNTIME.labels(name, queue).observe(elapsed)
    # No `tenant` here: tenant_schemas_celery's own postrun receiver has already put the connection back on the
    # public schema, so the tenant bound when the task started is the one the line must carry.
    logger.info(
        "task",
        extra={"state": state, "duration_ms": round(elapsed * 1000, 1) if elapsed is not None else None},
    )
    context.clear()
