"""The registry /metrics and a worker's metrics port read: this process's metrics, or with
PROMETHEUS_MULTIPROC_DIR set, every process's on this host (gunicorn workers, Celery pool processes)."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector


def process_registry() -> CollectorRegistry:
    """prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is imported: in that mode each process writes its
    values to files there and the default registry would show only this process, so a fresh registry adds up the
    files (the library's documented multiprocess setup)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    return registry
