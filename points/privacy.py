"""A person's points in their data export, and what erasing them scrubs here (the people app's registries)."""

from __future__ import annotations

from typing import Any

from core.money import format_amount
from people.models import Person

from .selectors import person_points, person_points_history


def points_export(person: Person) -> dict[str, Any]:
    """Balances per program and every points movement (awards, redemptions, expiry, reversals)."""
    return {
        "programs": [
            {
                "program": item.program.slug,
                "balance": item.balance,
                "value": {
                    "amount": format_amount(item.value, item.program.points_currency),
                    "currency": item.program.points_currency,
                },
            }
            for item in person_points(person_id=person.pk)
        ],
        "history": [
            {
                "program": row.program.slug,
                "kind": row.kind,
                "points": row.points,
                "reason": row.reason,
                "at": row.created_at.isoformat().replace("+00:00", "Z"),
            }
            for row in person_points_history(person_id=person.pk).order_by("created_at")
        ],
    }
