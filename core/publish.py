"""Publishing a Celery task by name after a commit, where a broker outage is logged and left to a sweeper.

By name, so an earlier stage of the pipeline hands work to a later one without importing it (orders → the
fulfilment worker). Never raises: the work is already durable (a committed row its sweeper finds), so a
broker outage must not turn a committed request into an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import current_app

logger = logging.getLogger(__name__)


def task_publish(
    name: str,
    *,
    args: Sequence[Any] = (),
    event: str,
    log_extra: dict[str, Any] | None = None,
    countdown: float | None = None,
    headers: dict[str, Any] | None = None,
) -> bool:
    """Send the task `name` with `args`; False, logged as `event`, when the broker could not take it.

    The task runs in the current tenant's schema unless `headers` name another (`_schema_name`). Call it
    after commit (`transaction.on_commit`), never inside a transaction."""
    try:
        current_app.send_task(name, args=list(args), countdown=countdown, headers=headers)
    except Exception:
        logger.warning(
            "task %s not published (broker unavailable); its sweeper will publish it",
            name,
            extra={"event": event, **(log_extra or {})},
        )
        return False
    return True
