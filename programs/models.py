"""A tenant's reward programs and its curation of the global catalogue (tenant schema).

Products live in the public schema, so references to them are plain UUID arrays rather than foreign
keys: a product the operator removes simply stops matching.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone


class BudgetPeriod(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    YEARLY = "yearly", "Yearly"
    NONE = "none", "No budget"


# Longest claim window a program or an order may give (ten years): beyond it a date is a typo, not a policy.
CLAIM_DAYS_MAX = 3650


class ExpiryPolicy(models.TextChoices):
    RELEASE = "release", "Release unclaimed value back to funds"
    KEEP = "keep", "Keep the code valid; no money moves"


class ClaimVerification(models.TextChoices):
    OFF = "off", "Off: the link alone opens the gift"
    EMAIL = "email", "A one-time code by email"
    SMS = "sms", "A one-time code by SMS"


class Program(models.Model):
    """A named way of sending rewards: its budget, which products it offers, and how the message looks."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    # A budget is an amount per period; period `none` (and no amount) means unlimited.
    budget_amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    budget_currency = models.CharField(max_length=3, blank=True)
    budget_period = models.CharField(max_length=16, choices=BudgetPeriod.choices, default=BudgetPeriod.NONE)
    # Empty: every product the tenant may order (after its CatalogRules).
    allowed_product_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    default_message = models.TextField(blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    branding = models.JSONField(default=dict, blank=True)  # {"logo_url": …, "primary_color": "#RRGGBB"}
    # The language of what recipients see when neither they nor the reward name one ("" = the tenant's).
    default_locale = models.CharField(max_length=10, blank=True)
    # An optional points currency ("Kudos"): `points_per_unit` points are worth one unit of `points_currency`,
    # the funding currency each award holds money in. Both are fixed once set (outstanding points hold money at
    # that rate); null `points_per_unit` means the program has no points.
    points_name = models.CharField(max_length=40, blank=True)
    points_per_unit = models.PositiveIntegerField(null=True, blank=True)
    points_currency = models.CharField(max_length=3, blank=True)
    points_expire_after_days = models.PositiveIntegerField(null=True, blank=True)  # null: points never expire
    points_self_redeem = models.BooleanField(default=False)  # recipients may spend points on the points page
    # Claim links: days a recipient has to claim (NULL: CLAIM_LINK_TTL_DAYS), what expiry does with unclaimed
    # value, the reminder schedule ({"after_days": [3, 7], "before_expiry_days": [7]}) and whether a browser
    # must prove it is the recipient's (a one-time code) before a code is revealed in it.
    claim_days = models.PositiveIntegerField(null=True, blank=True)
    on_expiry = models.CharField(max_length=8, choices=ExpiryPolicy.choices, default=ExpiryPolicy.RELEASE)
    reminders = models.JSONField(default=dict, blank=True)
    claim_verification = models.CharField(
        max_length=8, choices=ClaimVerification.choices, default=ClaimVerification.OFF
    )
    # Emails of this program carry a one-pixel image whose loading marks the reward `opened` (the funnel's
    # "opened" for emailed codes). Nothing about the reader is stored: no address, no agent, no time but the
    # reward's own event. Off: no pixel.
    track_email_opens = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(budget_amount__isnull=True, budget_period="none")
                | (Q(budget_amount__gt=0, budget_currency__regex=r"^[A-Z]{3}$") & ~Q(budget_period="none")),
                name="program_budget_amount_per_period",
            ),
            # A point's value (1 / points_per_unit) is exact in the ledger's four decimals: 10000 % ppu == 0.
            models.CheckConstraint(
                condition=Q(points_per_unit__isnull=True, points_currency="")
                | Q(points_per_unit__gte=1, points_per_unit__lte=10000, points_currency__regex=r"^[A-Z]{3}$"),
                name="program_points_rate_and_currency",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def has_points(self) -> bool:
        return self.points_per_unit is not None


class CatalogRuleMode(models.TextChoices):
    ALLOW = "allow", "Allow only these"
    DENY = "deny", "Never these"


class CatalogRule(models.Model):
    """Tenant curation: if an allow rule exists only what it names is orderable; deny always wins.

    One row per mode (set and replaced by `programs.services.catalog_rule_set`).
    """

    mode = models.CharField(max_length=8, choices=CatalogRuleMode.choices, unique=True)
    product_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    brand_slugs = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["mode"]

    def __str__(self) -> str:
        return f"{self.mode}: {len(self.product_ids)} products, {len(self.brand_slugs)} brands"
