"""Reads of people and activities, and their API representation (responses and webhook payloads agree)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from core.errors import ApplicationError, NotFoundError
from core.money import format_amount

from .models import Activity, Person, PrivacySettings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def person_render(person: Person) -> dict[str, Any]:
    return {
        "id": str(person.id),
        "external_id": person.external_id,
        "name": person.name,
        "email": person.email or None,
        "phone": person.phone or None,
        "locale": person.locale or None,
        "timezone": person.timezone or None,
        "country": person.country or None,
        "birthday": person.birthday,
        "hire_date": person.hire_date.isoformat() if person.hire_date else None,
        "department": person.department or None,
        "manager_email": person.manager_email or None,
        "attributes": person.attributes,
        "status": person.status,
        "left_at": _iso(person.left_at),
        "created_at": _iso(person.created_at),
        "updated_at": _iso(person.updated_at),
    }


def person_list(
    *,
    external_id: str | None = None,
    email: str | None = None,
    q: str | None = None,
    department: str | None = None,
    status: str | None = None,
) -> QuerySet[Person]:
    qs = Person.objects.all()
    if external_id:
        qs = qs.filter(external_id=external_id.strip())
    if email:
        qs = qs.filter(email=email.strip().lower())
    if department:
        qs = qs.filter(department=department.strip())
    if status:
        qs = qs.filter(status=status)
    if q and q.strip():
        text = q.strip()
        qs = qs.filter(Q(name__icontains=text) | Q(email__icontains=text) | Q(external_id__icontains=text))
    return qs


def person_get(*, person_id: Any) -> Person:
    person = Person.objects.filter(pk=person_id).first()
    if person is None:
        raise NotFoundError("No such person.")
    return person


def person_find(*, person_id: Any = None, external_id: str | None = None, field: str = "person_id") -> Person:
    """The person named by id or by external_id (exactly one of them); an unknown one is a 422 naming `field`
    (it is part of a request body, not of the path)."""
    if bool(person_id) == bool(external_id):
        raise ApplicationError(
            "Name the person by person_id or by person_external_id (one of them).",
            code="validation_error",
            errors={field: ["Give person_id or person_external_id."]},
        )
    person = (
        Person.objects.filter(pk=person_id).first()
        if person_id
        else Person.objects.filter(external_id=str(external_id).strip()).first()
    )
    if person is None:
        name = field if person_id else field.replace("person_id", "person_external_id")
        raise ApplicationError("No such person.", code="unknown_person", errors={name: ["No such person."]})
    return person


def activity_list(
    *, person_id: Any = None, type: str | None = None, external_id: str | None = None
) -> QuerySet[Activity]:
    qs = Activity.objects.all()
    if person_id:
        qs = qs.filter(person_id=person_id)
    if type:
        qs = qs.filter(type=type.strip())
    if external_id:
        qs = qs.filter(external_id=external_id.strip())
    return qs


def activity_render(activity: Activity) -> dict[str, Any]:
    return {
        "id": str(activity.id),
        "external_id": activity.external_id,
        "person_id": str(activity.person_id) if activity.person_id else None,
        "type": activity.type,
        "occurred_at": _iso(activity.occurred_at),
        "amount": format_amount(activity.amount, activity.currency) if activity.amount is not None else None,
        "currency": activity.currency or None,
        "attributes": activity.attributes,
        "reverses": activity.reverses or None,
        "points_earned": 0,
        "cashback": None,
        "created_at": _iso(activity.created_at),
    }


def privacy_settings_get() -> PrivacySettings:
    """The schema's privacy settings (defaults when never changed: nothing is anonymised on a timer)."""
    return PrivacySettings.objects.filter(pk=1).first() or PrivacySettings(pk=1)


def privacy_settings_render(settings: PrivacySettings) -> dict[str, Any]:
    changed = None if settings._state.adding else _iso(settings.updated_at)  # never saved: never changed
    return {"recipient_retention_days": settings.recipient_retention_days, "updated_at": changed}
