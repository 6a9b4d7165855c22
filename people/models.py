"""People (a tenant's employees or customers) and the activities integrators post about them.

Lives in each tenant schema, live and sandbox alike. Rewards copy what they need from a person (name, email,
phone, locale) when they are created, like the product snapshot, so editing a person never rewrites what was
sent; erasing one scrubs those copies too (people.erasure).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils.timezone import now


class PersonStatus(models.TextChoices):
    ACTIVE = "active"
    LEFT = "left"  # kept for history and reports; automations skip them


class Person(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=100)  # the employee or customer id in the tenant's own system
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True)
    locale = models.CharField(max_length=16, blank=True)  # "en", "ms", …; blank: the program's or tenant's
    timezone = models.CharField(max_length=64, blank=True)  # IANA; blank: the tenant's
    country = models.CharField(max_length=2, blank=True)
    # The birthday as month and day (indexed: "whose birthday is on 12-06" is one index scan); the year only
    # when the person gave it.
    birthday_month = models.PositiveSmallIntegerField(null=True, blank=True)
    birthday_day = models.PositiveSmallIntegerField(null=True, blank=True)
    birthday_year = models.PositiveSmallIntegerField(null=True, blank=True)
    hire_date = models.DateField(null=True, blank=True)
    department = models.CharField(max_length=100, blank=True)
    manager_email = models.EmailField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=PersonStatus.choices, default=PersonStatus.ACTIVE)
    left_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now, db_index=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="person_external_id_unique"),
            models.CheckConstraint(
                condition=Q(birthday_month__isnull=True, birthday_day__isnull=True, birthday_year__isnull=True)
                | Q(birthday_month__gte=1, birthday_month__lte=12, birthday_day__gte=1, birthday_day__lte=31),
                name="person_birthday_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["email"], name="person_email"),
            models.Index(fields=["department"], name="person_department"),
            models.Index(fields=["birthday_month", "birthday_day"], name="person_birthday"),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def birthday(self) -> str | None:
        """`MM-DD`, or `YYYY-MM-DD` when the year is known (the API's form)."""
        if self.birthday_month is None or self.birthday_day is None:
            return None
        month_day = f"{self.birthday_month:02d}-{self.birthday_day:02d}"
        return f"{self.birthday_year:04d}-{month_day}" if self.birthday_year else month_day


class Activity(models.Model):
    """Something a person did, posted by an integrator (`deal.closed`, `course.completed`): automations and
    earning rules react to it (people.reactions). Idempotent by `external_id`: the stored response is replayed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=100)
    # SET_NULL: erasing a person keeps the activity's amounts (what it earned stays accounted) but not who.
    person = models.ForeignKey(Person, null=True, on_delete=models.SET_NULL, related_name="activities")
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    reverses = models.CharField(max_length=100, blank=True)  # the external_id of an activity this one undoes
    response_body = models.JSONField(default=dict)  # what POST /activities answered: replayed for the same id
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="activity_external_id_unique")]
        indexes = [models.Index(fields=["person", "type"], name="activity_person_type")]

    def __str__(self) -> str:
        return self.external_id


class PrivacySettings(models.Model):
    """The tenant's privacy settings (one row per schema, pk 1): how long rewards keep their recipient's details."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    # Anonymise a reward's recipient name, email, phone and message this many days after delivery (beat:
    # orders.tasks.recipient_retention_task); None keeps them until the person is erased.
    recipient_retention_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="privacy_settings_singleton")]
