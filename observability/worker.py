"""A Celery worker's own /metrics port (METRICS_WORKER_PORT): its tasks' counters, latencies and queue waits,
for workers on hosts where no web process serves the same PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.conf import settings
from prometheus_client import start_http_server

from observability.registry import process_registry

logger = logging.getLogger(__name__)


@worker_ready.connect
def _serve_worker_metrics(sender: object = None, **kwargs: Any) -> None:
    """Started in the worker's main process; with the prefork pool its children write to PROMETHEUS_MULTIPROC_DIR
    (which must then be set) and the main process adds them up."""
    port = settings.METRICS_WORKER_PORT
    if not port:
        return
    start_http_server(port, addr=settings.METRICS_WORKER_ADDRESS, registry=process_registry())
    logger.info("worker metrics on port %s", port, extra={"event": "metrics.worker_port", "port": port})
