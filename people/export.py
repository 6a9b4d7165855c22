"""Everything held about a person, as one JSON document (the right of access): GET /api/v1/people/{id}/export
and the portal's Export button.

`people` knows its own rows (the profile, their activities); the apps above it that hold more about the person
(their rewards and what happened to them, automation runs, points) register a section here in their
AppConfig.ready(). Codes and claim links are never part of it: the person gets those through the reward itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils import timezone

from .models import Person
from .selectors import activity_render, person_render

Section = Callable[[Person], Any]
_sections: dict[str, Section] = {}


def export_section_register(name: str, section: Section) -> None:
    _sections[name] = section


def person_export(*, person: Person) -> dict[str, Any]:
    document: dict[str, Any] = {
        "exported_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "person": person_render(person),
        "activities": [activity_render(activity) for activity in person.activities.order_by("created_at")],
    }
    for name, section in _sections.items():
        document[name] = section(person)
    return document
