"""Orders and their rewards (line items), each reward with its own guarded state machine.

Lives in each tenant schema. A reward snapshots the product at order time (brand, name, face value,
currency) so later catalogue edits never change what was sold, and owns exactly one funds Hold.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class OrderType(models.TextChoices):
    DIGITAL = "digital"
    LINK = "link"
    PHYSICAL = "physical"


class OrderStatus(models.TextChoices):
    PENDING_APPROVAL = (
        "pending_approval",
        _("Pending Approval"),
    )  # funds held; waits for a second person (orders.approvals)
    PENDING = "pending", _("Pending")  # accepted, funds held, nothing delivered yet
    PROCESSING = "processing", _("Processing")  # some rewards in flight or delivered, others not yet
    COMPLETED = "completed", _("Completed")  # every reward reached a delivered (or later) state, or was canceled
    FAILED = "failed", _("Failed")  # every reward failed
    CANCELED = "canceled", _("Canceled")  # every reward canceled


class ApprovalStatus(models.TextChoices):
    NONE = ""  # the policy asked for no approval
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided within the policy's expires_after_days: funds released


APPROVAL_FIELDS = ["approval_status", "approval_decided_by", "approval_decided_at", "approval_reason"]


class Approvable(models.Model):
    """The maker–checker record of an order or a bulk batch (orders.approvals, batches.approvals)."""

    approval_status = models.CharField(max_length=16, choices=ApprovalStatus.choices, blank=True, default="")
    # Who asked (the Actor label of whoever placed the order or confirmed the batch): never its approver.
    approval_requested_by = models.CharField(max_length=200, blank=True)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    approval_decided_by = models.CharField(max_length=200, blank=True)  # the Actor's label
    approval_decided_at = models.DateTimeField(null=True, blank=True)
    approval_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        abstract = True


class Order(Approvable):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=OrderType.choices)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    # NULL, not "", when absent: the unique constraint must allow many orders without one.
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    po_number = models.CharField(max_length=100, blank=True)
    program = models.ForeignKey("programs.Program", null=True, blank=True, on_delete=models.PROTECT)
    # What the tenant is charged, in its funding currency (FX and fees recorded at order time).
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(max_digits=20, decimal_places=4)
    fees = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    shipping_amount = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    fx_rate = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    api_key_id = models.CharField(max_length=32, blank=True)  # who placed it (key_id), or blank (portal)
    created_by_email = models.CharField(max_length=254, blank=True)
    # The automation that placed it (automations sit above orders: an id, not a foreign key).
    automation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # The client's own key/values (orders.metadata checks them): searchable and exported.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="order_external_id_unique")]
        indexes = [
            # The approvals queue and the expiry sweep read only the few orders waiting.
            models.Index(
                fields=["approval_expires_at"], name="order_approval_pending", condition=Q(approval_status="pending")
            ),
            models.Index(fields=["po_number"], name="order_po_number"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class DeliveryMethod(models.TextChoices):
    EMAIL = "email"
    SMS = "sms"
    API = "api"
    LINK = "link"
    SHIPMENT = "shipment"


class RewardStatus(models.TextChoices):
    AWAITING_APPROVAL = (
        "awaiting_approval",
        _("Awaiting Approval"),
    )  # its order waits for approval: fulfilment never picks it up
    PENDING = "pending", _("Pending")
    SCHEDULED = "scheduled", _("Scheduled")
    PROCESSING = "processing", _("Processing")
    DELIVERED = "delivered", _("Delivered")
    DELIVERY_FAILED = (
        "delivery_failed",
        _("Delivery Failed"),
    )  # issued, but the email/SMS bounced: resend to a corrected address
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")
    OPENED = "opened", _("Opened")
    REDEEMED = "redeemed", _("Redeemed")
    EXPIRED = "expired", _("Expired")


# The reward state machine: the only legal moves (reward_transition checks them).
REWARD_TRANSITIONS: dict[str, set[str]] = {
    # Approved: on to fulfilment as any new reward; rejected or expired: canceled, its hold released.
    RewardStatus.AWAITING_APPROVAL: {RewardStatus.PENDING, RewardStatus.SCHEDULED, RewardStatus.CANCELED},
    RewardStatus.PENDING: {RewardStatus.SCHEDULED, RewardStatus.PROCESSING, RewardStatus.FAILED, RewardStatus.CANCELED},
    RewardStatus.SCHEDULED: {RewardStatus.PENDING, RewardStatus.PROCESSING, RewardStatus.CANCELED},
    RewardStatus.PROCESSING: {
        RewardStatus.PENDING,
        RewardStatus.DELIVERED,
        RewardStatus.DELIVERY_FAILED,  # issued and paid, but the message could not be sent (see the reason)
        RewardStatus.FAILED,
    },
    RewardStatus.DELIVERED: {
        RewardStatus.OPENED,
        RewardStatus.REDEEMED,
        RewardStatus.EXPIRED,
        RewardStatus.DELIVERY_FAILED,
        RewardStatus.CANCELED,  # only as orders.policy allows (a code is voided at the supplier first)
    },
    RewardStatus.DELIVERY_FAILED: {RewardStatus.DELIVERED, RewardStatus.CANCELED, RewardStatus.EXPIRED},
    RewardStatus.OPENED: {RewardStatus.REDEEMED, RewardStatus.EXPIRED, RewardStatus.CANCELED},
    RewardStatus.FAILED: set(),
    RewardStatus.CANCELED: set(),
    RewardStatus.REDEEMED: {RewardStatus.CANCELED},  # only after the supplier confirmed the code's void
    RewardStatus.EXPIRED: set(),
}
# States in which the reward has reached the recipient (the order counts it as done).
REWARD_DONE_STATES = {
    RewardStatus.DELIVERED,
    RewardStatus.DELIVERY_FAILED,
    RewardStatus.OPENED,
    RewardStatus.REDEEMED,
    RewardStatus.EXPIRED,
}


class Reward(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A short human reference, "RW-7K3Q-92": unique in the schema, drawn by the database from a sequence
    # (orders_reward_reference(), migration 0004) so every insert path, COPY included, gets one.
    reference = models.CharField(
        max_length=20,
        unique=True,
        editable=False,
        db_default=models.Func(function="orders_reward_reference", output_field=models.CharField()),
    )
    # No index of its own: (order, position) and (order, status) below serve every lookup by order, and one index
    # less is written for each new reward (a bulk chunk writes 5,000).
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="rewards", db_index=False)
    position = models.PositiveIntegerField(default=0)  # index in the order's request, for stable output
    status = models.CharField(max_length=20, choices=RewardStatus.choices, default=RewardStatus.PENDING)
    # Product snapshot (the product lives in the public schema's catalogue).
    product_id = models.UUIDField()
    product_snapshot = models.JSONField(default=dict)  # {"brand": …, "name": …, "type": …}
    amount = models.DecimalField(max_digits=20, decimal_places=4)  # face value
    currency = models.CharField(max_length=3)  # face value currency
    charge_amount = models.DecimalField(max_digits=20, decimal_places=4)  # in the order's currency
    hold = models.OneToOneField("funds.Hold", null=True, on_delete=models.PROTECT, related_name="reward")
    delivery_method = models.CharField(max_length=16, choices=DeliveryMethod.choices)
    # The person it was sent to, when the order named one (their name, email and phone are copied below at
    # creation, like the product snapshot); SET_NULL: erasing the person scrubs the copies (people.erasure).
    # Indexed only where set (reward_person below): most rewards name no person.
    person = models.ForeignKey(
        "people.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="rewards", db_index=False
    )
    recipient_name = models.CharField(max_length=200)
    recipient_email = models.EmailField(blank=True)
    recipient_phone = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)
    message = models.TextField(blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    # The language of the claim page, emails and SMS, chosen at creation (core.i18n): the recipient's, the
    # program's, the tenant's; '' = none named, the recipient's browser decides (messages go in English).
    locale = models.CharField(max_length=16, blank=True, default="")
    # No index of its own: every query by it names a status too, and (status, deliver_at) serves those.
    deliver_at = models.DateTimeField(null=True, blank=True)
    # The client's reference for this one reward (a bulk row's external_id); not unique.
    external_id = models.CharField(max_length=100, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Not modelled: `search_text`, a stored generated column (lower-cased reference, recipient, external id and
    # metadata values) behind a trigram index of its words after the reference (orders.search; migrations 0009,
    # 0026: a reference is matched whole, by its unique index).
    # Claim link (link delivery): the token is a bearer credential — kept encrypted, looked up by hash.
    claim_token_hash = models.CharField(max_length=64, blank=True)  # indexed where set: reward_claim_token
    claim_token_encrypted = models.TextField(blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # The gift card code, once issued: encrypted at rest, shown masked except through the audited reveal.
    code_encrypted = models.TextField(blank=True)
    pin_encrypted = models.TextField(blank=True)
    code_last4 = models.CharField(max_length=4, blank=True)
    # When the code first left the vault: an API or portal reveal, the claim page, or an email/SMS that carried
    # it. A disclosed code is spent: cancel refunds only after the supplier confirms a void (orders.policy).
    code_disclosed_at = models.DateTimeField(null=True, blank=True)
    # When the supplier confirmed the void of this reward's code (the code itself is then erased here).
    code_voided_at = models.DateTimeField(null=True, blank=True)
    supplier_reference = models.CharField(max_length=200, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # While a worker holds the reward in `processing`; a stale lease lets the sweeper hand it to another.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Engagement for the funnel (fulfillment.engagement): when the recipient first opened it (the email's pixel,
    # a followed link, the claim page, or a redemption, which implies it was seen) and first followed a link of
    # its email. Kept whatever the status becomes later, so an opened reward that expires still counted as opened.
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "deliver_at"], name="reward_status_deliver_at"),
            models.Index(fields=["order", "position"], name="reward_order_position"),
            # order_refresh_status's EXISTS seeks: which states an order's rewards are in, without counting them.
            models.Index(fields=["order", "status"], name="reward_order_status"),
            # The fulfilment drain's claim: the oldest pending rewards, without sorting every pending one.
            models.Index(fields=["created_at"], condition=Q(status="pending"), name="reward_pending_created"),
            # The expiry sweep and reminders: unclaimed links by claim-by date, a small part of all rewards.
            models.Index(
                fields=["claim_expires_at"],
                condition=Q(status__in=["delivered", "delivery_failed", "opened"], claim_expires_at__isnull=False),
                name="reward_unclaimed_link_expiry",
            ),
            models.Index(fields=["recipient_email"], name="reward_recipient_email"),
            # Partial: only link rewards have a claim token and few name a person, and a lookup by either value
            # implies it is set; every other reward (a bulk chunk writes 5,000) skips both (orders 0024).
            models.Index(fields=["claim_token_hash"], condition=~Q(claim_token_hash=""), name="reward_claim_token"),
            models.Index(fields=["person"], condition=Q(person__isnull=False), name="reward_person"),
            # The discount report (fulfillment.discount_reports): discounts issued per day, a small part of all rewards.
            models.Index(
                fields=["delivered_at"], condition=Q(product_snapshot__type="discount"), name="reward_discount_issued"
            ),
            # Recipient retention (orders.erasure): the earliest delivery whose recipient is kept, and those due.
            # Only delivered rewards not yet anonymised ("[erased]" is people.erasure.ERASED; the predicate is
            # the queries' own, so the planner matches it): a new reward (inserted undelivered) writes no entry,
            # an anonymised one leaves it (orders 0027).
            models.Index(
                fields=["delivered_at"],
                condition=Q(delivered_at__isnull=False) & ~Q(recipient_name="[erased]"),
                name="reward_delivered_kept",
            ),
        ]
        constraints = [
            # A face value always; a charge of 0 only for a zero-cost product (catalog Product.zero_cost), and then
            # no funds hold: nothing is held, captured, released or refunded for it.
            models.CheckConstraint(condition=Q(amount__gt=0) & Q(charge_amount__gte=0), name="reward_amounts_valid"),
            models.CheckConstraint(condition=Q(charge_amount__gt=0) | Q(hold__isnull=True), name="reward_free_no_hold"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class RewardEvent(models.Model):
    """The reward's timeline: every state change, with a note (never a code)."""

    reward = models.ForeignKey(Reward, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]


class ExpiryOutcome(models.TextChoices):
    RELEASED = "released"  # the unclaimed value went back to the tenant's available funds
    KEPT = "kept"  # the program keeps expired codes valid (on_expiry=keep): the money stays spent
    SPENT = "spent"  # the code had been disclosed, or its supplier refused a void: a disclosed code is spent


class RewardExpiry(models.Model):
    """A claim link that expired unclaimed: the breakage record (one per reward), read by the Funds page and reports.

    `amount` is the reward's charge in the order's funding currency; with outcome `released` exactly that went
    back to `cash` (a refund, or a release of a still pending hold, referenced `reward:<id>`).
    """

    reward = models.OneToOneField(Reward, on_delete=models.CASCADE, related_name="expiry")
    outcome = models.CharField(max_length=16, choices=ExpiryOutcome.choices)
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class IdempotencyRecord(models.Model):
    """The stored outcome of a POST with an Idempotency-Key (kept at least IDEMPOTENCY_KEY_TTL)."""

    key = models.CharField(max_length=255, unique=True)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)


# --- Maintained rollups (orders.rollups) ------------------------------------------------------------------
# Database triggers (migration 0004) append a delta row whenever rewards are inserted, change status or are
# deleted, and whenever a capture or refund is posted; `rollups_compact` folds the deltas into the rollup
# tables. Readers add the rollup and the (few) pending deltas, so what they read is exact at their snapshot,
# and no order ever waits on a shared counter row.


class Engagement(models.IntegerChoices):
    """How far the recipient engaged with a reward (the rollups' `engaged`, from opened_at and clicked_at)."""

    NONE = 0
    OPENED = 1
    CLICKED = 2  # followed a link of its email (which implies it was opened)


class RewardStat(models.Model):
    """Rewards created in the UTC `hour` starting then, now in `status`, per face currency and engagement: count
    and face value."""

    hour = models.DateTimeField()  # reports regroup hours into days of the tenant's zone
    status = models.CharField(max_length=20)
    currency = models.CharField(max_length=3)
    engaged = models.SmallIntegerField(default=Engagement.NONE, choices=Engagement.choices)
    rewards = models.BigIntegerField(default=0)
    amount = models.DecimalField(max_digits=24, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "status", "currency", "engaged"], name="reward_stat_key")
        ]


class RewardStatTotal(models.Model):
    """All-time RewardStat (every hour added up) per status, face currency and engagement: the dashboard's
    "rewards by status" is a read of a few rows, not of one row per hour since the first reward. Folded from the
    same deltas in the same statement as RewardStat (orders.rollups), and rebuilt from it hourly."""

    status = models.CharField(max_length=20)
    currency = models.CharField(max_length=3)
    engaged = models.SmallIntegerField(default=Engagement.NONE, choices=Engagement.choices)
    rewards = models.BigIntegerField(default=0)
    amount = models.DecimalField(max_digits=24, decimal_places=4, default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["status", "currency", "engaged"], name="reward_stat_total_key")]


class RewardStatDelta(models.Model):
    hour = models.DateTimeField()  # reports regroup hours into days of the tenant's zone
    status = models.CharField(max_length=20)
    currency = models.CharField(max_length=3)
    engaged = models.SmallIntegerField(default=Engagement.NONE, choices=Engagement.choices)
    rewards = models.BigIntegerField()
    amount = models.DecimalField(max_digits=24, decimal_places=4)


class SpendStat(models.Model):
    """Money spent (captures less refunds) posted in the UTC `hour` starting then, per funding currency, program,
    product and department (the reward's `metadata.department`); equals the ledger's spent account movements."""

    hour = models.DateTimeField()  # reports regroup hours into days of the tenant's zone
    currency = models.CharField(max_length=3)
    program_id = models.BigIntegerField(null=True)
    product_id = models.UUIDField(null=True)
    department = models.CharField(max_length=100, default="")
    amount = models.DecimalField(max_digits=24, decimal_places=4, default=0)
    captures = models.BigIntegerField(default=0)
    refunds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "currency", "program_id", "product_id", "department"],
                name="spend_stat_key",
                nulls_distinct=False,
            )
        ]


class SpendStatDelta(models.Model):
    hour = models.DateTimeField()  # reports regroup hours into days of the tenant's zone
    currency = models.CharField(max_length=3)
    program_id = models.BigIntegerField(null=True)
    product_id = models.UUIDField(null=True)
    department = models.CharField(max_length=100, default="")
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    captures = models.BigIntegerField()
    refunds = models.BigIntegerField()
