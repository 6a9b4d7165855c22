"""Erasing a person (the right to be forgotten): the person row goes, and every copy of their personal data in
other apps is scrubbed, while amounts and the ledger stay whole.

`people` sits below the apps that copy a person's data (orders, fulfilment, webhooks' stored events, the audit
log), so they register a scrubber here in their AppConfig.ready(); person_erase calls each in one transaction.
A scrubber gets the person (still in the database) and the strings to remove (their email, phone, name), and
blanks or replaces what it holds; it must not fail on rows that have nothing of the person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.actors import Actor
from audit.services import audit_record

from .models import Person

ERASED = "[erased]"


@dataclass(frozen=True)
class Erasure:
    """What to erase: the person, and the personal strings to look for in free text and stored JSON."""

    person: Person
    needles: tuple[str, ...]  # non-empty, distinct; the email and phone as stored, the name

    def scrub_json(self, value: Any) -> tuple[Any, bool]:
        """`value` with every string containing a needle replaced by ERASED; (new value, whether it changed)."""
        if isinstance(value, str):
            lowered = value.lower()
            if any(needle.lower() in lowered for needle in self.needles):
                return ERASED, True
            return value, False
        if isinstance(value, dict):
            changed = False
            result: dict[str, Any] = {}
            for key, item in value.items():
                result[key], hit = self.scrub_json(item)
                changed = changed or hit
            return result, changed
        if isinstance(value, list):
            items = [self.scrub_json(item) for item in value]
            return [item for item, _ in items], any(hit for _, hit in items)
        return value, False


Scrubber = Callable[[Erasure], None]
_scrubbers: dict[str, Scrubber] = {}


def erasure_scrubber_register(name: str, scrubber: Scrubber) -> None:
    _scrubbers[name] = scrubber


def person_needles(person: Person) -> tuple[str, ...]:
    """The strings that identify the person in free text: email, phone and name (a name of fewer than four
    characters would match too much unrelated text; it is blanked in the fields that hold it, not searched)."""
    found = [person.email, person.phone, person.name if len(person.name) >= 4 else ""]
    return tuple(dict.fromkeys(needle for needle in found if needle))


def person_erase(*, actor: Actor, person: Person) -> None:
    """Erase the person everywhere, in one transaction: the scrubbers, then the person.deleted event (id and
    external_id only), the audit row (the id only) and the person row itself."""
    with transaction.atomic():
        person = Person.objects.select_for_update().get(pk=person.pk)
        erasure = Erasure(person=person, needles=person_needles(person))
        # Latest registered first: a later stage (shipments) still finds the person's rewards by their email
        # before the earlier stage (orders) blanks it.
        for scrubber in reversed(list(_scrubbers.values())):
            scrubber(erasure)
        person_id = str(person.id)
        external_id = person.external_id
        person.activities.update(attributes={})
        person.delete()
        from webhooks.events import event_emit

        event_emit(type="person.deleted", data={"id": person_id, "external_id": external_id})
        audit_record(actor=actor, action="person.erased", object_type="person", object_id=person_id)
