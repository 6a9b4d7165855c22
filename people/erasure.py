"""Erasing a person (the right to be forgotten): the person row goes, and every copy of their personal data in
other apps is scrubbed, while amounts and the ledger stay whole.

`people` sits below the apps that copy a person's data (orders, fulfilment, batches, automations), so those
register here in their AppConfig.ready(), in one of two ways:
- a scrubber function, for rows tied to the person by a key (their rewards: blank the recipient fields);
- stored fields (`erasure_fields_register`): free text and JSON that may quote the person anywhere (events'
  payloads, audit data, idempotent replies, batch rows); every row whose field contains one of the person's
  strings (email, phone, name) has that string replaced, JSON values that contain it replaced whole.
The tables below `people` (webhooks' events and deliveries, the audit log) are registered by people itself.
person_erase runs everything in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db import connection, models, transaction

from audit.actors import Actor
from audit.services import audit_record
from core.bulk import rows_update

from .models import Person

ERASED = "[erased]"


@dataclass(frozen=True)
class Scrub:
    """The personal strings to look for in free text and stored JSON (a person's, or the recipients' of rewards
    whose retention period is over)."""

    needles: tuple[str, ...]  # non-empty, distinct; the email and phone as stored, the name

    @cached_property
    def _lowered(self) -> tuple[str, ...]:
        return tuple(needle.lower() for needle in self.needles)

    def scrub_text(self, value: str) -> tuple[str, bool]:
        """`value` with each occurrence of a needle (any case) replaced by ERASED; (new text, whether it changed)."""
        new = value
        for needle, lowered in zip(self.needles, self._lowered, strict=True):
            # A needle that cannot be there is skipped without a regular expression (compiling one per needle was
            # a quarter of a retention round under cProfile): for ASCII text and needle, "any case" is exactly
            # lower() containment; otherwise (e.g. the Kelvin sign matches k) the expression decides.
            if new.isascii() and needle.isascii() and lowered not in new.lower():
                continue
            new = re.sub(re.escape(needle), ERASED, new, flags=re.IGNORECASE)
        return new, new != value

    def scrub_json(self, value: Any) -> tuple[Any, bool]:
        """`value` with every string containing a needle replaced by ERASED; (new value, whether it changed)."""
        if isinstance(value, str):
            lowered = value.lower()
            if any(needle in lowered for needle in self._lowered):
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


@dataclass(frozen=True)
class Erasure(Scrub):
    """What to erase: the person, and their strings (`needles`)."""

    person: Person


Scrubber = Callable[[Erasure], None]
_scrubbers: dict[str, Scrubber] = {}
_fields: dict[str, tuple[type[models.Model], tuple[str, ...]]] = {}


def erasure_scrubber_register(name: str, scrubber: Scrubber) -> None:
    _scrubbers[name] = scrubber


def erasure_fields_register(model: type[models.Model], fields: tuple[str, ...]) -> None:
    """Text or JSON fields of `model` that may hold a person's strings anywhere in them."""
    _fields[model._meta.label] = (model, fields)


def _like(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fields_scrub(erasure: Erasure, model: type[models.Model], fields: tuple[str, ...]) -> int:
    """Replace the person's strings in `fields` of every row of `model` that holds one; the rows changed."""
    if not erasure.needles:
        return 0
    table = connection.ops.quote_name(model._meta.db_table)
    columns = {name: model._meta.get_field(name) for name in fields}
    quoted = [connection.ops.quote_name(str(getattr(field, "column", name))) for name, field in columns.items()]
    where = " OR ".join(f"{column}::text ILIKE %s" for column in quoted for _ in erasure.needles)
    params = [_like(needle) for _ in columns for needle in erasure.needles]
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk} FROM {table} WHERE {where}", params)
        ids = [row[0] for row in cursor.fetchall()]
    return rows_scrub(scrub=erasure, rows=model._default_manager.filter(pk__in=ids), fields=fields)


def rows_scrub(*, scrub: Scrub, rows: models.QuerySet[Any], fields: tuple[str, ...]) -> int:
    """Replace `scrub`'s strings in `fields` of `rows` (free text in place, JSON strings whole); the rows changed."""
    if not scrub.needles:
        return 0
    return len(rows_scrub_each(rows=rows, fields=fields, scrub_for=lambda _: scrub))


def rows_scrub_each(
    *, rows: models.QuerySet[Any], fields: tuple[str, ...], scrub_for: Callable[[Any], Scrub], key: str = "pk"
) -> dict[Any, Any]:
    """rows_scrub for rows that each have their own strings: a row's are `scrub_for(its value of key)` (a field,
    or a lookup through a relation, e.g. an attempt's `delivery__event_id`). Returns {changed row's pk: that value}.

    Set-based: the rows are read in one statement, scrubbed here, and the changed ones written back in one
    (core.bulk.rows_update), however many there are. A statement per row made recipient retention's first run on
    a big tenant take 6,566 statements and ~6 s per round of 1,000 rewards: 138 rewards/s, 1,656 now
    (bench/retention.py)."""
    model = rows.model
    json_fields = {name for name in fields if isinstance(model._meta.get_field(name), models.JSONField)}
    changes: dict[Any, dict[str, Any]] = {}
    changed: dict[Any, Any] = {}
    for pk, value, *current in rows.order_by().values_list("pk", key, *fields):
        scrub = scrub_for(value)
        updates = {}
        for name, old in zip(fields, current, strict=True):
            new, hit = scrub.scrub_json(old) if name in json_fields else scrub.scrub_text(old or "")
            if hit:
                updates[name] = new
        if updates:
            changes[pk] = updates
            changed[pk] = value
    rows_update(model, changes)
    return changed


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
        for model, fields in _fields.values():
            fields_scrub(erasure, model, fields)
        person_id = str(person.id)
        external_id = person.external_id
        person.activities.update(attributes={})
        person.delete()
        from webhooks.events import event_emit

        event_emit(type="person.deleted", data={"id": person_id, "external_id": external_id})
        from .services import people_changed

        people_changed()
        audit_record(actor=actor, action="person.erased", object_type="person", object_id=person_id)
