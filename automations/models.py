"""Automations (rules that send a reward by themselves: birthdays, work anniversaries, custom dates, activities)
and their runs, one row per (automation, person, occurrence). Lives in each tenant schema.

Exactly once by construction: an AutomationRun is unique on (automation, person, occurrence) and is claimed in
the same transaction as the order it creates (automations.running), so two schedulers, a retried task or a
worker killed half way can never send a second reward for one birthday.
"""

from __future__ import annotations

import uuid
from datetime import time

from django.db import models
from django.utils import timezone


class TriggerType(models.TextChoices):
    BIRTHDAY = "birthday"
    WORK_ANNIVERSARY = "work_anniversary"  # the hire date's anniversaries (year 0: the first day)
    DATE_ATTRIBUTE = "date_attribute"  # the anniversaries of a date in the person's attributes
    ACTIVITY = "activity"  # an activity of a given type posted for the person (POST /activities)


class Automation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    trigger_type = models.CharField(max_length=20, choices=TriggerType.choices)
    trigger_years = models.JSONField(default=list, blank=True)  # anniversaries only these years; [] = every year
    trigger_attribute = models.CharField(max_length=64, blank=True)  # date_attribute: the attribute's name
    trigger_activity_type = models.CharField(max_length=100, blank=True)  # activity: e.g. "deal.closed"
    # {"department": [...], "country": [...], "attributes": {name: value}}: who qualifies; {} = everyone active.
    audience = models.JSONField(default=dict, blank=True)
    # The reward: a product and amount (an order), or `points` of the program's points currency (a points award;
    # then product_id is NULL, amount 0 and currency "").
    product_id = models.UUIDField(null=True, blank=True)
    amount = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    currency = models.CharField(max_length=3, blank=True)
    points = models.PositiveIntegerField(null=True, blank=True)
    delivery_method = models.CharField(max_length=16, default="email")
    message = models.TextField(blank=True)  # may name the person's fields: {first_name}, {name}, {years}, …
    program = models.ForeignKey("programs.Program", null=True, blank=True, on_delete=models.PROTECT)
    send_time = models.TimeField(default=time(9, 0))  # local to the person (else the tenant)
    days_offset = models.SmallIntegerField(default=0)  # send this many days after the occurrence (negative: before)
    enabled = models.BooleanField(default=True)
    # The last local day the tenant was told this automation could not pay (an alert once a day, not per person).
    funds_alerted_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def reward_unit(self) -> str:
        """The currency, or for a points reward the program's name for its points (else "points")."""
        if self.points is not None:
            from django.utils.translation import gettext

            return getattr(self.program, "points_name", "") or gettext("points")
        return self.currency

    @property
    def reward_label(self) -> str:
        """What each person gets, for the portal: "25.00 USD" or "500 Kudos"."""
        if self.points is not None:
            return f"{self.points:,} {self.reward_unit}"
        return f"{self.amount:.2f} {self.currency}"


class RunStatus(models.TextChoices):
    # An activity's reward waiting for its send_time/days_offset; the scheduler's tick sends it (claimed already,
    # so a replayed activity or a second beat never adds another).
    PENDING = "pending"
    SENT = "sent"  # its order exists
    FAILED = "failed"  # the order was refused (the reason is kept); retried the same local day when it may help


class AutomationRun(models.Model):
    """One occurrence of an automation for one person: what it sent, or why it could not."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="runs")
    # SET_NULL: erasing a person keeps the count of what was sent, not who it was sent to.
    person = models.ForeignKey("people.Person", null=True, on_delete=models.SET_NULL, related_name="automation_runs")
    occurs_on = models.DateField()  # the birthday, anniversary or activity day (local)
    # What makes the occurrence unique: the date (date triggers) or "activity:<external_id>".
    occurrence = models.CharField(max_length=120)
    send_at = models.DateTimeField()  # when it was due
    retry_until = models.DateTimeField()  # the end of the local day it was due: no catching up after
    status = models.CharField(max_length=8, choices=RunStatus.choices)
    order = models.OneToOneField("orders.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A points automation's award (points.PointsAward, an app above this one: its id, not a foreign key).
    points_award_id = models.UUIDField(null=True, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["automation", "person", "occurrence"], name="automation_run_once")
        ]
        indexes = [models.Index(fields=["status", "retry_until"], name="automation_run_retry")]

    def __str__(self) -> str:
        return f"{self.automation_id}:{self.person_id}:{self.occurrence}"
