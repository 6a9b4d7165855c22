"""Points: a double-entry ledger of points per program, each award backed by a funds hold (tenant schema).

Per program there are three ledger accounts, plus one per person who holds its points:
  issued    – where awarded points come from (a contra account; it only goes negative)
  person    – a person's spendable points (`balance`); never below zero
  redeemed  – points spent on rewards
  expired   – points that ran out (expiry) or were taken back (reversal)
Every transaction's entries sum to zero and each account's balance equals the sum of its entries.

Each award is a lot (`PointsAward`) with the points still left of it (`remaining`) and the funds hold that
pays for them: a point is worth 1/points_per_unit of the program's funding currency, and while points are
left the award's hold is pending for exactly their value. Redemption spends lots first-to-expire first and
moves their value out of the holds into the reward's own hold; expiry and reversal release it
(points.selectors.points_invariant_violations checks all of this).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class PointsAccountKind(models.TextChoices):
    ISSUED = "issued"
    PERSON = "person"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


class PointsAccount(models.Model):
    program = models.ForeignKey("programs.Program", on_delete=models.PROTECT, related_name="+")
    # SET_NULL: erasing a person keeps the account's books (entries, awards) whole, without who it was.
    person = models.ForeignKey("people.Person", null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=16, choices=PointsAccountKind.choices)
    balance = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["program", "person"], condition=Q(kind="person"), name="points_account_person_unique"
            ),
            models.UniqueConstraint(
                fields=["program", "kind"], condition=~Q(kind="person"), name="points_account_program_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind="person") | Q(person__isnull=True),
                name="points_account_owner",
            ),
            models.CheckConstraint(condition=Q(kind="issued") | Q(balance__gte=0), name="points_account_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.program_id}:{self.kind}:{self.person_id or ''}"


class PointsTransactionKind(models.TextChoices):
    AWARD = "award"
    REDEEM = "redeem"
    EXPIRE = "expire"
    REVERSE = "reverse"


class PointsTransaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=PointsTransactionKind.choices)
    program = models.ForeignKey("programs.Program", on_delete=models.PROTECT, related_name="+")
    # SET_NULL: erasing a person keeps the books whole (amounts stay, who goes).
    person = models.ForeignKey("people.Person", null=True, on_delete=models.SET_NULL, related_name="+")
    points = models.BigIntegerField()  # positive: how many points this transaction moved
    reason = models.CharField(max_length=300, blank=True)
    reference = models.CharField(max_length=100, blank=True, db_index=True)  # "order:<uuid>", "activity:<id>"
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(points__gt=0), name="points_transaction_positive")]


class PointsEntry(models.Model):
    transaction = models.ForeignKey(PointsTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(PointsAccount, on_delete=models.PROTECT, related_name="entries")
    points = models.BigIntegerField()  # signed: + increases the account

    class Meta:
        indexes = [models.Index(fields=["account"])]


class PointsAward(models.Model):
    """One award: a lot of points with its expiry and the funds hold paying for what is left of it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The client's id (awards are idempotent by it); NULL, not "", for none: the unique constraint skips NULLs.
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    transaction = models.OneToOneField(PointsTransaction, on_delete=models.PROTECT, related_name="award")
    program = models.ForeignKey("programs.Program", on_delete=models.PROTECT, related_name="+")
    person = models.ForeignKey("people.Person", null=True, on_delete=models.SET_NULL, related_name="+")
    account = models.ForeignKey(PointsAccount, on_delete=models.PROTECT, related_name="awards")
    points = models.BigIntegerField()
    remaining = models.BigIntegerField()
    hold = models.ForeignKey("funds.Hold", on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="points_award_external_id_unique"),
            models.CheckConstraint(
                condition=Q(points__gt=0, remaining__gte=0) & Q(remaining__lte=models.F("points")),
                name="points_award_remaining_within_points",
            ),
        ]
        indexes = [
            # Redemption spends an account's open lots first-to-expire first; the expiry sweep finds due lots.
            models.Index(fields=["account", "expires_at"], condition=Q(remaining__gt=0), name="points_award_open"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="points_award_due"),
        ]


class EarningPeriod(models.TextChoices):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class EarningRule(models.Model):
    """On an activity of `activity_type`, award a fixed number of points, points per unit of its amount, or a
    cashback percentage of its amount credited as points at the program's rate; capped per activity and per
    period (per person)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    program = models.ForeignKey("programs.Program", on_delete=models.PROTECT, related_name="+")
    activity_type = models.CharField(max_length=100, db_index=True)
    points_fixed = models.PositiveIntegerField(null=True, blank=True)
    points_per_unit = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    cashback_percent = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    cap_per_activity = models.PositiveIntegerField(null=True, blank=True)
    cap_per_period = models.PositiveIntegerField(null=True, blank=True)
    period = models.CharField(max_length=16, choices=EarningPeriod.choices, default=EarningPeriod.MONTHLY)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(points_fixed__isnull=False, points_per_unit__isnull=True, cashback_percent__isnull=True)
                | Q(points_fixed__isnull=True, points_per_unit__isnull=False, cashback_percent__isnull=True)
                | Q(points_fixed__isnull=True, points_per_unit__isnull=True, cashback_percent__isnull=False),
                name="earning_rule_one_way_to_earn",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.activity_type} → {self.program_id}"


class PointsSignIn(models.Model):
    """A sign-in link to the points page, emailed to a person: single use, expiring; only its hash is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    person = models.ForeignKey("people.Person", on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"sign-in for {self.person_id}"
