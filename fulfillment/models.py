"""Fulfilment records in the tenant schema: physical shipments and their tracking events."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class ShipmentStatus(models.TextChoices):
    PENDING = "pending"
    SUBMITTED = "submitted"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    RETURNED = "returned"
    EXCEPTION = "exception"
    CANCELED = "canceled"


SHIPMENT_TRANSITIONS: dict[str, set[str]] = {
    ShipmentStatus.PENDING: {ShipmentStatus.SUBMITTED, ShipmentStatus.CANCELED},
    ShipmentStatus.SUBMITTED: {ShipmentStatus.SHIPPED, ShipmentStatus.EXCEPTION, ShipmentStatus.CANCELED},
    ShipmentStatus.SHIPPED: {
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.DELIVERED,
        ShipmentStatus.RETURNED,
        ShipmentStatus.EXCEPTION,
    },
    ShipmentStatus.IN_TRANSIT: {ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED, ShipmentStatus.EXCEPTION},
    ShipmentStatus.EXCEPTION: {ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED},
    ShipmentStatus.DELIVERED: {ShipmentStatus.RETURNED},
    ShipmentStatus.RETURNED: set(),
    ShipmentStatus.CANCELED: set(),
}


class Shipment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reward = models.OneToOneField("orders.Reward", on_delete=models.CASCADE, related_name="shipment")
    status = models.CharField(max_length=16, choices=ShipmentStatus.choices, default=ShipmentStatus.PENDING)
    shipping_method_id = models.UUIDField()
    carrier = models.CharField(max_length=100)
    method_name = models.CharField(max_length=200)
    address = models.JSONField()  # name, line1, line2, city, state, postal_code, country
    tracking_number = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]


class ShipmentEvent(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16, choices=ShipmentStatus.choices)
    description = models.CharField(max_length=300, blank=True)
    location = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]


class CodeReveal(models.Model):
    """Audit of every time a code left the vault (API reveal, admin, claim page)."""

    reward = models.ForeignKey("orders.Reward", on_delete=models.CASCADE, related_name="reveals")
    actor = models.CharField(max_length=200)  # "api-key:<key_id>", "staff:<email>", "recipient"
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]


class ClaimVerification(models.Model):
    """A one-time code sent to a claim link's recipient so a new browser can prove it is theirs
    (programs with claim verification on; fulfillment.claim_verification). Only an HMAC of the code is kept."""

    reward = models.ForeignKey("orders.Reward", on_delete=models.CASCADE, related_name="verifications")
    channel = models.CharField(max_length=8)  # email | sms
    code_hash = models.CharField(max_length=64)
    attempts = models.PositiveSmallIntegerField(default=0)  # wrong guesses at this code
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["reward", "-created_at"], name="claim_verification_latest")]


class RewardReminder(models.Model):
    """One reminder of a program's schedule for one unclaimed claim link: claimed (inserted) in the transaction
    that sends it, so each is sent at most once per reward (fulfillment.reminders). `key` is the schedule entry
    (`after:3` = three days after the link went out, `before:7` = seven days before it expires)."""

    reward = models.ForeignKey("orders.Reward", on_delete=models.CASCADE, related_name="reminders")
    key = models.CharField(max_length=20)
    channel = models.CharField(max_length=8, blank=True)  # email | sms; blank: superseded by a later entry
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sent_at", "id"]
        constraints = [models.UniqueConstraint(fields=["reward", "key"], name="reward_reminder_once")]


class DiscountRedemption(models.Model):
    """A merchant's report that a discount reward's code was used (fulfillment.discounts): one per reward.

    Kept apart from the reward's timeline because it carries the merchant's facts (its order amount and time, the
    partner key that said so) that the tenant's usage reports count and a replayed report is compared against.
    """

    reward = models.OneToOneField("orders.Reward", on_delete=models.CASCADE, related_name="discount_redemption")
    partner_key_id = models.CharField(max_length=32)  # the reporting key's public id (tenants.ApiKey.key_id)
    order_amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    order_currency = models.CharField(max_length=3, blank=True)
    redeemed_at = models.DateTimeField(db_index=True)  # the merchant's time, or when the report arrived (reports)
    reported_at = models.DateTimeField(default=timezone.now)
