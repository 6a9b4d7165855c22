"""Tenants (one PostgreSQL schema each, plus a sandbox twin), their portal domains and the API-key index.

All of these live in the public schema. A client company is one *live* Tenant row; its sandbox twin is a
second row (`is_sandbox=True`, schema `<slug>_sandbox`, `live` pointing back), so django-tenants can route
to either schema with the same code and no `livemode` flag on tenant rows. The twin's row exists from the start
(its id, slug and key prefix never change); its schema is provisioned on first use (`schema_ready`).
"""

from __future__ import annotations

import ipaddress

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin


class TenantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class TenantQuerySet(models.QuerySet["Tenant"]):
    def with_schema(self) -> TenantQuerySet:
        """The tenants whose schema exists: every live tenant, and the sandbox twins used at least once. Loops that
        only sweep or count (periodic tasks, metrics, `platform_migrate`, the console's cross-tenant pages) walk
        these: an unprovisioned twin has nothing in it."""
        return self.filter(schema_ready=True)


class Tenant(TenantMixin):
    slug = models.SlugField(max_length=40)
    name = models.CharField(max_length=200)
    default_currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=16, choices=TenantStatus.choices, default=TenantStatus.ACTIVE)
    is_sandbox = models.BooleanField(default=False)
    live = models.OneToOneField("self", null=True, blank=True, on_delete=models.CASCADE, related_name="sandbox")
    created_at = models.DateTimeField(default=timezone.now)
    # The language of rewards whose recipient and program name none ('' = the recipient's browser decides on the
    # claim page; messages go in English), and the zone the portal shows and reads times in (IANA name).
    # Written to the live row and its sandbox twin together (tenants.services.tenant_settings_update).
    default_locale = models.CharField(max_length=16, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC")
    # Maker–checker (tenants.policies.ApprovalPolicy): {"thresholds": {"USD": "1000.00"}, "expires_after_days": 7,
    # "keys": [...], "roles": [...]}; {} = no approvals. Kept the same on the sandbox twin (tenants.policies), so
    # an integrator can try the 202 flow with a test key and order creation reads it without another query.
    approval_policy = models.JSONField(default=dict, blank=True)
    # Staff without two-factor are sent to enrol at sign-in (live tenant; the twin has no staff of its own).
    require_two_factor = models.BooleanField(default=False)
    # False only for a sandbox twin whose schema has not been provisioned yet: tenant_create makes the twin's row
    # but not its schema (~350 relations most tenants never use); tenants.services.tenant_sandbox_ensure
    # provisions it, once, on first use (a test key, the portal's sandbox mode) and sets this. Never reset.
    schema_ready = models.BooleanField(default=True)

    objects = TenantQuerySet.as_manager()

    auto_create_schema = True
    auto_drop_schema = True  # deleting a tenant row (operator only, after export) drops its schema

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["slug", "is_sandbox"], name="tenant_slug_mode_unique"),
        ]
        ordering = ["slug", "is_sandbox"]

    def __str__(self) -> str:
        return f"{self.slug} (sandbox)" if self.is_sandbox else self.slug

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> bool:
        """Provision by replaying the tenant migrations' SQL (tenants.provisioning), not clone_schema."""
        from django_tenants.utils import schema_exists

        from core.db import connection

        from .provisioning import schema_provision

        if not self.schema_ready:
            return False  # a lazy sandbox twin: tenant_sandbox_ensure provisions it on first use
        if check_if_exists and schema_exists(self.schema_name):
            return False
        schema_provision(schema_name=self.schema_name)
        connection.set_schema_to_public()
        return True

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE

    @property
    def live_tenant(self) -> Tenant:
        return self.live if self.is_sandbox and self.live is not None else self


class SchemaTemplate(models.Model):
    """The SQL that builds a fully migrated tenant schema, per set of tenant migrations (tenants.provisioning)."""

    state_key = models.CharField(max_length=64, unique=True)
    statements = models.JSONField()
    seed_tables = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.state_key[:12]


class Domain(DomainMixin):
    """A portal host name (`<slug>.<PORTAL_DOMAIN>`) of a live tenant."""


class ApiScope(models.TextChoices):
    """The scopes a tenant may give its own keys (portal Developers page, `api_key_create`)."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    # Approve or reject orders and batches waiting for a second pair of eyes (never the key that placed them).
    APPROVE = "approve", "Approve"


# A fulfilment partner's credential: it reads the tenant's shipments and reports their tracking, nothing else.
# Shipment status is the partner's word, never the tenant's, so this scope is not one of ApiScope: only the
# operator issues it (`manage.py partner_key_create`), and no tenant-facing form or service can grant it.
# It is an ApiKey rather than a model of its own because it needs everything a key already has (routing by
# prefix to the live or sandbox schema, hashing, IP allowlist, expiry, revocation, failed-credential
# throttling, token exchange, rate limit, API audit); a second credential model would duplicate that path.
PARTNER_SCOPE = "shipments:report"
# A merchant's (or its checkout partner's) credential: it reports that a discount code was used, nothing else.
# Same reasoning as above: redemption is the merchant's word, never the tenant's, so only the operator issues it.
DISCOUNT_PARTNER_SCOPE = "discounts:report"
PARTNER_SCOPES = (PARTNER_SCOPE, DISCOUNT_PARTNER_SCOPE)
KEY_SCOPE_CHOICES = [
    *ApiScope.choices,
    (PARTNER_SCOPE, "Shipment reports (fulfilment partner)"),
    (DISCOUNT_PARTNER_SCOPE, "Discount redemption reports (merchant partner)"),
]


def validate_cidr(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not an IP network in CIDR notation") from exc


class ApiKey(models.Model):
    """An API credential. Only a SHA-256 hash of the key is stored; `key_id` is the public part."""

    key_id = models.CharField(max_length=32, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    key_hash = models.CharField(max_length=64)
    last4 = models.CharField(max_length=4)
    scopes = ArrayField(models.CharField(max_length=16, choices=KEY_SCOPE_CHOICES), default=list)
    allowed_cidrs = ArrayField(models.CharField(max_length=64, validators=[validate_cidr]), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A partner key holds the partner scope alone: it can never also read or write the tenant's data.
            models.CheckConstraint(
                condition=~Q(scopes__contains=[PARTNER_SCOPE]) | Q(scopes=[PARTNER_SCOPE]),
                name="api_key_partner_scope_alone",
            ),
            models.CheckConstraint(
                condition=~Q(scopes__contains=[DISCOUNT_PARTNER_SCOPE]) | Q(scopes=[DISCOUNT_PARTNER_SCOPE]),
                name="api_key_discount_partner_scope_alone",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}{self.key_id}_…{self.last4}"

    @property
    def prefix(self) -> str:
        return "rp_test_" if self.tenant.is_sandbox else "rp_live_"

    @property
    def is_partner(self) -> bool:
        """An operator-issued partner key: a fulfilment partner's (shipments) or a merchant's (discount reports)."""
        return any(scope in self.scopes for scope in PARTNER_SCOPES)

    @property
    def reports_shipments(self) -> bool:
        return PARTNER_SCOPE in self.scopes

    @property
    def reports_discounts(self) -> bool:
        return DISCOUNT_PARTNER_SCOPE in self.scopes


class ClaimTokenIndex(models.Model):
    """Which tenant schema holds a claim link: the recipient page arrives on the public host with only a token.

    Only the SHA-256 of the token is stored (as on the reward itself), so this table alone opens nothing.
    Written in the same transaction as the order that creates the token (orders.create and orders.claim_tokens).
    """

    token_hash = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="claim_tokens")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"claim token …{self.token_hash[-6:]} → {self.tenant}"


class DepositInstructions(models.Model):
    """The operator's bank details shown on tenants' Funds pages, per funding currency ("" = any currency without
    its own): set in the operator console, they override FUNDS_DEPOSIT_INSTRUCTIONS. `{reference}` in the text
    becomes the tenant's transfer reference. Who changed them last, and when, stays on the row."""

    currency = models.CharField(max_length=3, blank=True, unique=True)
    text = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["currency"]


class TenantDueEvent(models.Model):
    """ "Schema S may have sweep work of kind K from `due_at` on": what lets a beat sweep visit only the schemas
    with work instead of every schema (tenants.due).

    Written by statement triggers on the tenant tables that hold such work (rewards, webhook deliveries, batches,
    the rollups' deltas: `public.tenant_due_note()`), in the transaction that wrote the work, and by the sweep
    itself for the next time something in a schema falls due (a scheduled reward, a lease). Append-only for the
    writers (no row is shared, so no writer waits for another); a sweep deletes exactly the rows it read before
    visiting the schema, after the visit.
    """

    id = models.BigAutoField(primary_key=True)
    schema_name = models.CharField(max_length=63)
    kind = models.CharField(max_length=20)
    due_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["kind", "due_at"], name="tenant_due_kind_at")]

    def __str__(self) -> str:
        return f"{self.kind} in {self.schema_name} from {self.due_at:%Y-%m-%d %H:%M:%S}"
