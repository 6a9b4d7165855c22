"""What reacts to a posted activity, without `people` importing the apps that react.

Later stages (automations, points and earning rules) register a reaction in their AppConfig.ready(); an
activity, once written, is handed to each in the same transaction, and what each returns (e.g.
`{"points_earned": 50}`) becomes part of the activity's response — stored, so a replay answers the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Activity

ActivityReaction = Callable[["Activity"], dict[str, Any]]

_reactions: dict[str, ActivityReaction] = {}


def activity_reaction_register(name: str, reaction: ActivityReaction) -> None:
    """Register (or replace, so a reloaded app registers once) the reaction called `name`."""
    _reactions[name] = reaction


def activity_reactions_run(activity: Activity) -> dict[str, Any]:
    """Every reaction's result merged, in registration order; `points_earned` adds up across reactions."""
    result: dict[str, Any] = {}
    for reaction in _reactions.values():
        outcome = reaction(activity)
        points = result.get("points_earned", 0) + outcome.get("points_earned", 0)
        result.update(outcome)
        if points:
            result["points_earned"] = points
    return result
