"""Test-only fault injection: a worker kills itself with SIGKILL at a named point between two steps of a flow.

The resilience suite (resilience/test_worker_kills.py) uses it to kill a worker exactly where a crash hurts
most, e.g. after the supplier issued a code but before it was recorded. It is off unless
settings.FAULT_INJECTION is true, which only the test settings set (from TEST_FAULT_INJECTION=1 in the
worker's environment); no production or dev setting reads it, so in production `fault_point()` is one
attribute check. When on, a test arms a point with a budget in Redis (`fault_arm("fulfil.issued", times=2)`)
and the next `times` passes through that point by any worker end the process on the spot, as a power cut
would: no `finally`, no task ack, an open transaction left to the database to roll back.

Points (see fulfillment/services.py and fulfillment/drain.py):
  fulfil.issued   the supplier returned a code; not yet stored on the reward, the hold not yet captured
  fulfil.settled  the code stored and the hold captured (committed); the email/SMS not yet sent
  deliver.sent    the email/SMS accepted by the mail server/provider; not yet noted, the reward not yet marked
                  delivered
  deliver.noted   the email accepted and noted (fulfillment.delivery.mail_accepted_note); in a drain's batch,
                  the rest of the batch not yet sent and none of it recorded

`fault_arm(point, times=1, after=7)` lets the first 7 passes through the point go by (the 8th email of a batch).
"""

from __future__ import annotations

import logging
import os
import signal

from django.conf import settings

logger = logging.getLogger(__name__)

POINTS = ("fulfil.issued", "fulfil.settled", "deliver.sent", "deliver.noted")


def _key(point: str) -> str:
    return f"rp:fault:{point}"


def _skip_key(point: str) -> str:
    return f"rp:fault-skip:{point}"


def fault_point(point: str) -> None:
    """Die here (SIGKILL) if fault injection is on and this point is armed; otherwise do nothing."""
    if not getattr(settings, "FAULT_INJECTION", False):
        return
    from core.redis import get_redis

    if get_redis().decr(_skip_key(point)) >= 0:
        return  # armed with `after`: this pass goes by
    if get_redis().decr(_key(point)) >= 0:
        logger.warning("fault injection: SIGKILL", extra={"event": "fault.kill", "point": point})
        os.kill(os.getpid(), signal.SIGKILL)


def fault_arm(point: str, *, times: int, after: int = 0) -> None:
    """Tests: after `after` passes through `point`, the next `times` passes kill the worker passing it."""
    from core.redis import get_redis

    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}")
    get_redis().set(_skip_key(point), after)
    get_redis().set(_key(point), times)


def fault_kills(point: str, *, armed: int) -> int:
    """Tests: how many of the `armed` kills at `point` have happened."""
    from core.redis import get_redis

    left = int(get_redis().get(_key(point)) or 0)
    return armed - max(left, 0)


def fault_disarm() -> None:
    from core.redis import get_redis

    get_redis().delete(*[_key(point) for point in POINTS], *[_skip_key(point) for point in POINTS])
