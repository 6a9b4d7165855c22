"""The HTTP half of a drain: the worker's send threads, and the lanes that POST one endpoint's deliveries in turn.

A lane signs each request as it goes (the timestamp is the send time) and cuts its timeout to what is left
of the claim's lease, so no request is in flight when another drain may take the delivery over. The drain
(webhooks.drain) claims, prepares and records; this module only sends and leaves the answer on the `Send`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from . import outbound
from .signing import request_headers

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 1024
# Threads per worker process that make the HTTP requests of every drain running in it.
SEND_THREADS = 64
# A request must end this long before its claim's lease runs out (time to record it: flushes come every
# drain.FLUSH_SECONDS), and is not started with less than MIN_REQUEST_SECONDS left: a delivery is never in
# flight when another drain may take it over.
LEASE_MARGIN_SECONDS = 1.0
MIN_REQUEST_SECONDS = 1.0


@dataclass
class Send:
    """One claimed delivery on its way: what is sent, and what came back."""

    delivery_id: str
    endpoint_id: str
    number: int
    retry_index: int
    url: str = ""
    body: bytes = b""
    keys: tuple[bytes, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    response: outbound.Response | None = None
    recorded: bool = False


_executor_lock = threading.Lock()
_executor_instance: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The process's send threads (SEND_THREADS), shared by every drain running in it."""
    global _executor_instance
    with _executor_lock:
        if _executor_instance is None:
            _executor_instance = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="webhook-send")
        return _executor_instance


def _fault_point(point: str) -> None:
    """Test-only: core.faults kills the worker here when a resilience test armed `point`; otherwise nothing."""
    if getattr(settings, "FAULT_INJECTION", False):
        from core.faults import fault_point

        fault_point(point)


def send_lane(sends: deque[Send], deadline: float, lease_end: float) -> None:
    """POST one endpoint's deliveries in turn over a kept-alive connection, until none is left or time is up.

    Each request's timeout is cut to what is left of the claim's lease (`lease_end`, monotonic), so no
    request is still in flight when another drain may take the delivery over. Never raises: an unexpected
    error (a bug, a URL http.client cannot encode) is that delivery's failed attempt, not the lane's end.
    """
    while time.monotonic() < deadline:
        timeout = min(settings.WEBHOOK_TIMEOUT_SECONDS, lease_end - time.monotonic() - LEASE_MARGIN_SECONDS)
        if timeout < MIN_REQUEST_SECONDS:
            return
        try:
            send = sends.popleft()
        except IndexError:
            return
        try:
            send.headers = request_headers(webhook_id=send.delivery_id, body=send.body, keys=send.keys)
            response = outbound.post(
                send.url,
                body=send.body,
                headers=send.headers,
                timeout=timeout,
                max_body=RESPONSE_EXCERPT_BYTES,
                keep_alive=True,
            )
        except Exception as exc:
            logger.error(
                "webhook request failed unexpectedly",
                extra={"event": "webhook.send_error", "delivery_id": send.delivery_id, "error": type(exc).__name__},
            )
            response = outbound.Response(error=f"{type(exc).__name__}: {exc}"[:500])
        if response.status is not None and 200 <= response.status < 300:
            _fault_point("webhook.sent")  # the receiver took it, not yet recorded: it will be sent again
        send.response = response  # from here the drain may record it
