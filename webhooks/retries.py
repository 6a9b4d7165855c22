"""The retry policy: when a delivery is tried (again), and what an attempt's answer means for it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import NotRequired, TypedDict

from django.conf import settings

from core.http import retry_after_seconds

from . import outbound
from .models import DeliveryStatus


def retry_schedule() -> list[float]:
    """Seconds before each attempt (the first is the delay after the event), from WEBHOOK_RETRY_SCHEDULE."""
    return [float(s) for s in settings.WEBHOOK_RETRY_SCHEDULE] or [0.0]


def _jittered(seconds: float) -> float:
    spread = seconds * settings.WEBHOOK_RETRY_JITTER
    return max(0.0, seconds + random.uniform(-spread, spread))


class AttemptOutcome(TypedDict):
    """A delivery's new state after an attempt (its columns), and what the attempt row and the drain need."""

    status: str
    code: int | None
    error: str
    retry_index: int
    next_attempt_at: datetime | None
    enqueued_at: datetime | None
    succeeded_at: datetime | None
    succeeded: bool
    attempt_error: str
    delay: NotRequired[float]  # seconds until the retry, when there is one


def attempt_outcome(*, response: outbound.Response, retry_index: int, now: datetime) -> AttemptOutcome:
    """What an attempt's response means for its delivery: succeeded, failed, or pending until a retry time.

    2xx succeeds; 410 Gone, or the end of the schedule, fails; anything else retries after the next step
    of the schedule (jittered), or after the receiver's Retry-After on 429/503 if that is longer.
    """
    succeeded = response.status is not None and 200 <= response.status < 300
    error = response.error or ("" if succeeded else f"HTTP {response.status}")
    outcome: AttemptOutcome = {
        "status": DeliveryStatus.SUCCEEDED if succeeded else DeliveryStatus.FAILED,
        "code": response.status,
        "error": "" if succeeded else error[:500],
        "retry_index": retry_index,
        "next_attempt_at": None,
        "enqueued_at": None,
        "succeeded_at": now if succeeded else None,
        "succeeded": succeeded,
        "attempt_error": error[:500],
    }
    if succeeded:
        return outcome
    outcome["retry_index"] = retry_index + 1
    schedule = retry_schedule()
    if response.status == 410 or outcome["retry_index"] >= len(schedule):
        return outcome
    delay = _jittered(schedule[outcome["retry_index"]])
    if response.status in (429, 503):
        wait = retry_after_seconds(response.headers.get("retry-after"), now=now)
        if wait is not None:
            delay = max(delay, min(wait, settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS))
    outcome["status"] = DeliveryStatus.PENDING
    outcome["next_attempt_at"] = now + timedelta(seconds=delay)
    if delay <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
        outcome["enqueued_at"] = outcome["next_attempt_at"]  # a drain is published for then (by the drain)
    outcome["delay"] = delay
    return outcome
