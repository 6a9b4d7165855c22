"""Beat's refresh of the business gauges /metrics serves (see observability.snapshot)."""

from __future__ import annotations

from celery import shared_task

from observability.snapshot import snapshot_refresh


@shared_task(name="observability.tasks.metrics_snapshot_refresh", ignore_result=True)
def metrics_snapshot_refresh() -> None:
    snapshot_refresh()
