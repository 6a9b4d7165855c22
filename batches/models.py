"""Bulk CSV sends: a Batch (one uploaded file), its valid rows (normalised, ready to become rewards) and its
row errors. Lives in each tenant schema.

A row becomes at most one reward: BatchRow is unique on (batch, row_number) and its `reward` is set once, by a
conditional UPDATE in the same transaction that creates the reward, so a re-run chunk or a crashed worker
never sends a row twice.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from orders.models import Approvable


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"  # the upload is being read (inside the upload's transaction)
    VALIDATED = "validated"  # a preview: nothing held or sent yet
    PENDING_APPROVAL = "pending_approval"  # funds held; waits for a second person (batches.approvals)
    CONFIRMED = "confirmed"  # funds for every valid row held; orders about to be created
    PROCESSING = "processing"  # workers are creating the orders chunk by chunk
    COMPLETED = "completed"  # every valid row handled; leftover hold released
    FAILED = "failed"  # every valid row failed when its order was created
    CANCELED = "canceled"  # stopped before every row was sent; what was not sent is released


BATCH_ACTIVE_STATES = {BatchStatus.CONFIRMED, BatchStatus.PROCESSING}
# A confirmed (or later) batch with the same file hash makes a new upload of that file a duplicate.
BATCH_SENT_STATES = {BatchStatus.PENDING_APPROVAL, BatchStatus.CONFIRMED, BatchStatus.PROCESSING, BatchStatus.COMPLETED}
# The moves a batch may make; batches.lifecycle.batch_transition is the one place its status changes.
BATCH_TRANSITIONS: dict[str, set[str]] = {
    BatchStatus.VALIDATING: {BatchStatus.VALIDATED},  # a file refused while being read is rolled back whole
    BatchStatus.VALIDATED: {BatchStatus.CONFIRMED, BatchStatus.PENDING_APPROVAL, BatchStatus.CANCELED},
    # Approved: on as a confirmed batch; rejected, expired or withdrawn: canceled, its holds released.
    BatchStatus.PENDING_APPROVAL: {BatchStatus.CONFIRMED, BatchStatus.CANCELED},
    # Finished from `confirmed` too: a chunk that finds no row left pending finishes whatever the batch's state.
    BatchStatus.CONFIRMED: {BatchStatus.PROCESSING, BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELED},
    BatchStatus.PROCESSING: {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELED},
    BatchStatus.COMPLETED: set(),
    BatchStatus.FAILED: set(),
    BatchStatus.CANCELED: set(),
}


class BatchKind(models.TextChoices):
    REWARDS = "rewards"  # each row becomes a reward (bulk send)
    PEOPLE = "people"  # each row creates or updates a person (people import, batches.people)
    POINTS = "points"  # each row awards points to a person (points.bulk_csv, registered in batches.kinds)


class Batch(Approvable):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=BatchKind.choices, default=BatchKind.REWARDS)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.VALIDATING)
    program = models.ForeignKey("programs.Program", null=True, blank=True, on_delete=models.PROTECT)
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    file_bytes = models.PositiveBigIntegerField(default=0)
    # The file's header row as written: the error file repeats it (plus `error`) so it uploads again as is.
    header = models.JSONField(default=list, blank=True)
    allow_duplicate = models.BooleanField(default=False)  # uploaded (or confirmed) with force=true
    # An earlier, not canceled batch of this tenant with the same file (a warning in the preview).
    duplicate_of = models.UUIDField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)  # data rows in the file (the header not counted)
    valid_rows = models.PositiveIntegerField(default=0)
    error_rows = models.PositiveIntegerField(default=0)
    # {"USD": "1234.50"}: what the valid rows cost, per funding currency (face value + FX fees + shipping).
    total_cost = models.JSONField(default=dict)
    # A people import's preview: {"create": n, "update": m} (what the valid rows will do).
    summary = models.JSONField(default=dict, blank=True)
    rows_done = models.PositiveIntegerField(default=0)  # valid rows handled (reward created or row failed)
    rows_failed = models.PositiveIntegerField(default=0)  # valid rows that could not become a reward
    # The last row_number handled: chunks continue after it (rows are handled in file order).
    cursor_row = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=300, blank=True)
    api_key_id = models.CharField(max_length=32, blank=True)
    created_by_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every chunk: a confirmed/processing batch quiet for too long is re-queued by the sweeper.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["approval_expires_at"],
                name="batch_approval_pending",
                condition=models.Q(approval_status="pending"),
            )
        ]

    def __str__(self) -> str:
        return str(self.id)


class BatchHold(models.Model):
    """The funds hold for a whole batch in one funding currency; chunks move parts of it to reward holds."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="holds")
    currency = models.CharField(max_length=3)
    hold = models.OneToOneField("funds.Hold", on_delete=models.PROTECT, related_name="batch_hold")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "currency"], name="batch_hold_batch_currency")]


class BatchRowStatus(models.TextChoices):
    PENDING = "pending"
    CREATED = "created"  # its reward exists
    FAILED = "failed"  # could not become a reward when its chunk ran (e.g. the product was withdrawn)
    CANCELED = "canceled"  # the batch was canceled before this row was sent


class BatchRow(models.Model):
    """A valid row, normalised (`data`), with what it costs in its funding currency."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the (batch, row_number) unique index serves every lookup by batch, and one index less is
    # written for each uploaded row and again when a chunk marks it done.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="batch_rows", db_index=False)
    row_number = models.PositiveIntegerField()  # as a spreadsheet numbers it: the header is row 1
    external_id = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3)  # funding currency
    charge = models.DecimalField(max_digits=20, decimal_places=4)  # face value converted + FX fee + shipping
    data = models.JSONField()
    status = models.CharField(max_length=16, choices=BatchRowStatus.choices, default=BatchRowStatus.PENDING)
    # The row's reward, set once by the chunk that creates it (a conditional UPDATE in the same transaction). No
    # foreign key constraint and no index in the database (batches 0009): a chunk wrote 5,000 of each, and checked
    # each one at COMMIT (8 % of a chunk's PostgreSQL CPU); the reward exists by construction (same transaction),
    # its id is new for each row, rewards are never deleted (PROTECT still refuses a delete through the ORM), and
    # nothing looks a row up by its reward.
    reward = models.ForeignKey(
        "orders.Reward",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="batch_row",
        db_constraint=False,
        db_index=False,
    )
    failure_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "row_number"], name="batch_row_unique_row")]


class BatchRowError(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField()
    column = models.CharField(max_length=40, blank=True)
    message = models.CharField(max_length=300)
    # The row's cells as uploaded, on the first error of each row only: the error file gives them back.
    cells = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["batch", "row_number"], name="batch_row_error_row")]
