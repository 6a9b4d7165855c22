"""The tenant's prepaid funds: a double-entry ledger with holds (per tenant schema, per currency).

Per currency there are four ledger accounts:
  external  – where deposits come from (a contra account; may go negative)
  cash      – funds the tenant can spend now (`available`); never below zero
  holds     – funds earmarked for orders not yet fulfilled (`held`); never below zero
  spent     – funds captured for fulfilled rewards; never below zero
posted = cash + holds; available = cash. Every transaction's entries sum to zero, and each account's
balance equals the sum of its entries (checked by `funds.selectors.ledger_invariant_violations`).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone


class AccountKind(models.TextChoices):
    EXTERNAL = "external"
    CASH = "cash"
    HOLDS = "holds"
    SPENT = "spent"


# Rows are always locked in this order, so concurrent postings never deadlock.
ACCOUNT_LOCK_ORDER = [AccountKind.CASH, AccountKind.HOLDS, AccountKind.SPENT, AccountKind.EXTERNAL]


class LedgerAccount(models.Model):
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=16, choices=AccountKind.choices)
    balance = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    # Only meaningful on the cash account: below this available balance, a balance.low alert is raised.
    low_balance_threshold = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["currency", "kind"], name="ledger_account_currency_kind"),
            models.CheckConstraint(
                condition=Q(kind="external") | Q(balance__gte=0), name="ledger_account_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.currency}:{self.kind}"


class TransactionKind(models.TextChoices):
    DEPOSIT = "deposit"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class LedgerTransaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=TransactionKind.choices)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    description = models.CharField(max_length=300, blank=True)
    reference = models.CharField(max_length=100, blank=True, db_index=True)  # e.g. "reward:<uuid>"
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Not a column: set by funds.services on the transaction it posts, (balance, low_balance_threshold) of the
    # cash account as that posting left them.
    cash_after: tuple[Decimal, Decimal | None]

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One refund per reference (e.g. "reward:<uuid>", "shipment:<uuid>"): a refund is idempotent in the
            # ledger itself, whatever its caller checked (funds_refund relies on this).
            models.UniqueConstraint(
                fields=["reference"],
                condition=models.Q(kind="refund") & ~models.Q(reference=""),
                name="ledger_refund_reference_unique",
            )
        ]


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    # Indexed once, by the Meta index (the foreign key's own copy of it was dropped: funds 0009).
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries", db_index=False)
    amount = models.DecimalField(max_digits=20, decimal_places=4)  # signed: + increases the account

    class Meta:
        indexes = [models.Index(fields=["account"])]


class HoldStatus(models.TextChoices):
    PENDING = "pending"
    CAPTURED = "captured"
    RELEASED = "released"


class Hold(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.PENDING)
    # What the hold is for ("reward:<uuid>", "batch:<uuid>"), shown in its ledger transactions' descriptions. Not
    # indexed (funds 0011): no query looks a hold up by it (a reward names its hold; the ledger transactions carry
    # the same reference, indexed), and every reward's hold wrote an entry.
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class HoldPostingAtCommit(models.Model):
    """A hold's ledger posting (cash → holds) that PostgreSQL applies as the transaction commits.

    `funds_hold(at_commit=True)` writes one with the hold and its ledger transaction; a deferred constraint
    trigger (migration 0005) runs the cash and holds UPDATEs and writes the two entries during COMMIT, then
    deletes the row. So the table is empty outside an open transaction, and the tenant's cash row, which every
    order updates, is locked for the commit alone instead of from the UPDATE through the rest of the request
    (bench/PROFILE-orders.md). The trigger refuses, failing the commit, when available funds would go below zero
    or cross the low-balance threshold (funds.services.HoldRefusedAtCommit).
    """

    transaction_id = models.UUIDField(primary_key=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=20, decimal_places=4)


class DepositRequestStatus(models.TextChoices):
    PENDING = "pending"  # waiting for the operator to see the money arrive
    CREDITED = "credited"
    REJECTED = "rejected"


class DepositRequest(models.Model):
    """A tenant's notice that it sent money: the operator console approves it and credits the ledger."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    reference = models.CharField(max_length=100)  # the bank transfer's reference, to match the statement
    status = models.CharField(max_length=16, choices=DepositRequestStatus.choices, default=DepositRequestStatus.PENDING)
    requested_by = models.CharField(max_length=254)  # actor email: sandbox schemas have no staff users
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_request_amount_positive")]


class LowBalanceAlertRecipient(models.Model):
    """Who is emailed when available funds cross below a currency's threshold (besides the balance.low webhook)."""

    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["email"]


class LedgerDayStat(models.Model):
    """Per UTC day, currency and transaction kind: how the posted balance (cash + holds) moved, and how many
    transactions moved it. Fed by a trigger on ledger entries (migration 0004) through LedgerDayStatDelta and
    folded by funds.statements.ledger_days_compact; monthly statements and running balances read it."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=24, decimal_places=4, default=0)
    transactions = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "currency", "kind"], name="ledger_day_stat_key")]


class LedgerDayStatDelta(models.Model):
    day = models.DateField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    transactions = models.BigIntegerField()
