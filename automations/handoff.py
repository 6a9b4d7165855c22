"""Points awards for automations, without `automations` importing `points` (a later stage that spends into orders).

The points app registers its award function here in its AppConfig.ready(); an automation whose reward is
`{"points": …}` hands each person's award to it, inside the run's transaction, with the run's id as the award's
external id (so a retried run can never award twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from uuid import UUID

    from people.models import Person
    from programs.models import Program


class PointsAwarder(Protocol):
    def __call__(self, *, program: Program, person: Person, points: int, reason: str, external_id: str) -> UUID:
        """Award the points (raising ApplicationError, e.g. `insufficient_funds`, when it cannot); the award's id."""
        ...


_awarders: list[PointsAwarder] = []


def points_awarder_register(awarder: PointsAwarder) -> None:
    """Register (or replace, so a reloaded app registers once) the function that awards points."""
    _awarders[:] = [awarder]


def points_awarder() -> PointsAwarder | None:
    """The registered awarder; None when the points app is not installed."""
    return _awarders[0] if _awarders else None
