"""Writes of people and activities (run inside the tenant's schema): create, update, mark as left, erase, and
record an activity once per external_id.

Each write emits its webhook event and its audit row in its own transaction. Audit rows name the fields that
changed, never their values (people are personal data; people.erasure scrubs what other rows copied).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from core.errors import ApplicationError
from core.money import parse_amount, parse_currency
from core.text import control_character_error

from .models import Activity, Person, PersonStatus, PrivacySettings
from .reactions import activity_reactions_run
from .selectors import activity_render, person_find, person_render
from .validation import person_fields_clean

# The core.versions counter bumped by every change to the directory (create, update, import, erasure): caches
# built from people (the Automations list's upcoming sends) carry it in their keys.
PEOPLE_VERSION = "people"


def people_changed() -> None:
    """Count a change to the directory once the current transaction commits (core.versions)."""
    from core.versions import version_bump

    version_bump(PEOPLE_VERSION)


def _refuse(errors: dict[str, list[str]]) -> ApplicationError:
    detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
    return ApplicationError(detail, code="validation_error", errors=errors)


def _duplicate(external_id: str) -> ApplicationError:
    return ApplicationError(
        f"A person with external_id {external_id!r} already exists.",
        code="duplicate_external_id",
        status=409,
        errors={"external_id": ["Already used by another person."]},
    )


def _is_duplicate_external_id(exc: IntegrityError) -> bool:
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) == "person_external_id_unique"


def person_create(*, actor: Actor, fields: dict[str, Any]) -> Person:
    """A person from API-shaped `fields` (people.validation.PERSON_FIELDS). A taken external_id is a 409."""
    values, errors = person_fields_clean(fields, creating=True)
    if errors:
        raise _refuse(errors)
    if values.get("status") == PersonStatus.LEFT:
        values["left_at"] = timezone.now()
    person = Person(**values)
    with transaction.atomic():
        try:
            with transaction.atomic():
                person.save(force_insert=True)
        except IntegrityError as exc:
            if _is_duplicate_external_id(exc):
                raise _duplicate(person.external_id) from None
            raise
        from webhooks.events import event_emit

        event_emit(type="person.created", data=person_render(person))
        people_changed()
        audit_record(actor=actor, action="person.created", object_type="person", object_id=person.id,
                     data={"external_id": person.external_id})  # fmt: skip
    return person


def person_update(*, actor: Actor, person: Person, fields: dict[str, Any]) -> Person:
    """Change the fields given (API-shaped); `status: left` marks the person as left (automations skip them)."""
    values, errors = person_fields_clean(fields, creating=False)
    if errors:
        raise _refuse(errors)
    with transaction.atomic():
        person = Person.objects.select_for_update().get(pk=person.pk)
        changed = [name for name, value in values.items() if getattr(person, name) != value]
        if not changed:
            return person
        if "status" in changed:
            values["left_at"] = timezone.now() if values["status"] == PersonStatus.LEFT else None
        for name, value in values.items():
            setattr(person, name, value)
        person.updated_at = timezone.now()
        try:
            with transaction.atomic():
                person.save()
        except IntegrityError as exc:
            if _is_duplicate_external_id(exc):
                raise _duplicate(person.external_id) from None
            raise
        from webhooks.events import event_emit

        event_emit(type="person.updated", data={**person_render(person), "changed": sorted(changed)})
        people_changed()
        audit_record(actor=actor, action="person.updated", object_type="person", object_id=person.id,
                     data={"external_id": person.external_id, "changed": sorted(changed)})  # fmt: skip
    return person


def person_mark_left(*, actor: Actor, person: Person) -> Person:
    return person_update(actor=actor, person=person, fields={"status": PersonStatus.LEFT})


def activity_record(
    *,
    actor: Actor,
    external_id: str,
    type: str,
    occurred_at: datetime,
    person_id: Any = None,
    person_external_id: str | None = None,
    amount: Any = None,
    currency: str | None = None,
    attributes: dict[str, Any] | None = None,
    reverses: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """(response body, created). The same external_id again returns the first response unchanged (created False),
    whatever the new body says: the integrator's retry after a lost answer earns nothing twice. Reactions
    (people.reactions: automations, earning rules) run in the activity's transaction."""
    external_id = (external_id or "").strip()
    activity_type = (type or "").strip()
    errors: dict[str, list[str]] = {}
    for name, text, limit in (("external_id", external_id, 100), ("type", activity_type, 100),
                              ("reverses", reverses or "", 100)):  # fmt: skip
        if len(text) > limit:
            errors[name] = [f"At most {limit} characters."]
        elif problem := control_character_error(text):
            errors[name] = [problem]
    if not external_id:
        errors["external_id"] = ["Required."]
    if not activity_type:
        errors["type"] = ["Required."]
    if errors:
        raise _refuse(errors)
    existing = Activity.objects.filter(external_id=external_id).first()
    if existing is not None:
        return existing.response_body, False
    person = person_find(person_id=person_id, external_id=person_external_id)
    value: Decimal | None = None
    code = ""
    if amount is not None:
        code = parse_currency(currency)
        value = parse_amount(amount, code, allow_zero=True)
    elif currency:
        code = parse_currency(currency)
    if attributes is not None and not isinstance(attributes, dict):
        raise _refuse({"attributes": ["Give an object."]})
    activity = Activity(
        external_id=external_id,
        person=person,
        type=activity_type,
        occurred_at=occurred_at,
        amount=value,
        currency=code,
        attributes=attributes or {},
        reverses=(reverses or "").strip(),
    )
    try:
        with transaction.atomic():
            activity.save(force_insert=True)
            body = {**activity_render(activity), **activity_reactions_run(activity)}
            Activity.objects.filter(pk=activity.pk).update(response_body=body)
            audit_record(actor=actor, action="activity.recorded", object_type="activity", object_id=activity.id,
                         data={"external_id": external_id, "type": activity_type})  # fmt: skip
    except IntegrityError:
        # A concurrent post of the same external_id won the insert: answer as it did.
        existing = Activity.objects.filter(external_id=external_id).first()
        if existing is None:
            raise
        return existing.response_body, False
    return body, True


MAX_RETENTION_DAYS = 3650


def privacy_settings_update(*, actor: Actor, recipient_retention_days: Any) -> PrivacySettings:
    """Set how many days after delivery rewards keep their recipient's details (None: until erasure)."""
    days = recipient_retention_days
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_RETENTION_DAYS
    ):
        raise _refuse(
            {"recipient_retention_days": [f"A whole number of days from 1 to {MAX_RETENTION_DAYS}, or null."]}
        )
    with transaction.atomic():
        settings, _ = PrivacySettings.objects.select_for_update().get_or_create(pk=1)
        settings.recipient_retention_days = days
        settings.updated_at = timezone.now()
        settings.save()
        audit_record(actor=actor, action="privacy.retention_set", object_type="privacy", object_id=1,
                     data={"recipient_retention_days": days})  # fmt: skip
    return settings
