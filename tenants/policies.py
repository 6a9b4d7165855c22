"""A tenant's security policies: maker–checker approvals (who must ask a second person) and required two-factor.

The approval policy is stored as JSON on the tenant row (`Tenant.approval_policy`) in the shape the API shows:
`{"thresholds": {"USD": "1000.00"}, "expires_after_days": 7, "keys": ["<key_id>"], "roles": ["manager"]}`,
`{}` meaning no approvals. `approval_policy_parse` is the one validator; the setters go through the tenant's
settings (tenants.tenant_settings, also behind PATCH /api/v1/tenant), which write a live tenant's sandbox twin too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from audit.actors import Actor
from core.errors import ApplicationError
from core.money import format_amount, parse_amount, parse_currency

from .models import Tenant

APPROVAL_EXPIRES_DEFAULT_DAYS = 7
APPROVAL_EXPIRES_MAX_DAYS = 90  # a request nobody looks at for a quarter should not keep money held
APPROVAL_ROLES = ("admin", "manager", "finance")  # accounts.models.Role values that may place orders


@dataclass(frozen=True)
class ApprovalPolicy:
    thresholds: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount at or over which to ask
    expires_after_days: int = APPROVAL_EXPIRES_DEFAULT_DAYS
    keys: frozenset[str] = frozenset()  # API keys (key_id) whose every order and batch waits for approval
    roles: frozenset[str] = frozenset()  # staff roles whose every order and batch waits for approval

    @property
    def enabled(self) -> bool:
        return bool(self.thresholds or self.keys or self.roles)

    def requires(self, *, totals: dict[str, Decimal], api_key_id: str = "", role: str = "") -> bool:
        """Whether an order or batch costing `totals` (per funding currency), placed by this key or role, waits."""
        if api_key_id and api_key_id in self.keys:
            return True
        if role and role in self.roles:
            return True
        return any(
            currency in self.thresholds and amount >= self.thresholds[currency] for currency, amount in totals.items()
        )

    def as_json(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        body: dict[str, Any] = {
            "thresholds": {c: format_amount(a, c) for c, a in sorted(self.thresholds.items())},
            "expires_after_days": self.expires_after_days,
        }
        if self.keys:
            body["keys"] = sorted(self.keys)
        if self.roles:
            body["roles"] = sorted(self.roles)
        return body


def _invalid(field_name: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="validation_error", errors={field_name: [message]})


def approval_policy_parse(value: object) -> ApprovalPolicy:
    """The policy from its JSON shape; a validation_error naming the bad field otherwise. `{}`/None: none."""
    if value in (None, {}):
        return ApprovalPolicy()
    if not isinstance(value, dict):
        raise _invalid("approval_policy", _("The approval policy must be an object (or {} for none)."))
    unknown = sorted(set(value) - {"thresholds", "expires_after_days", "keys", "roles"})
    if unknown:
        raise _invalid("approval_policy", _("Unknown approval policy fields: %s.") % ", ".join(unknown))
    raw_thresholds = value.get("thresholds") or {}
    if not isinstance(raw_thresholds, dict) or len(raw_thresholds) > 50:
        raise _invalid("approval_policy.thresholds", _("Thresholds are an object of currency → amount."))
    thresholds: dict[str, Decimal] = {}
    for raw_currency, raw_amount in raw_thresholds.items():
        currency = parse_currency(raw_currency, field="approval_policy.thresholds")
        thresholds[currency] = parse_amount(raw_amount, currency, field=f"approval_policy.thresholds.{currency}")
    days = value.get("expires_after_days", APPROVAL_EXPIRES_DEFAULT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= APPROVAL_EXPIRES_MAX_DAYS:
        raise _invalid(
            "approval_policy.expires_after_days",
            _("Expiry is a whole number of days from 1 to %(max)d.") % {"max": APPROVAL_EXPIRES_MAX_DAYS},
        )
    keys = value.get("keys") or []
    if not isinstance(keys, list) or len(keys) > 100 or not all(isinstance(k, str) and 0 < len(k) <= 32 for k in keys):
        raise _invalid("approval_policy.keys", _("Keys are a list of API key ids."))
    roles = value.get("roles") or []
    if not isinstance(roles, list) or not all(r in APPROVAL_ROLES for r in roles):
        raise _invalid("approval_policy.roles", _("Roles are a list of: %s.") % ", ".join(APPROVAL_ROLES))
    return ApprovalPolicy(thresholds=thresholds, expires_after_days=days, keys=frozenset(keys), roles=frozenset(roles))


def approval_policy_of(tenant: Tenant) -> ApprovalPolicy:
    """The stored policy (validated when it was set; an unreadable one asks for approval of nothing)."""
    stored: Any = tenant.approval_policy
    if isinstance(stored, str):
        # The API's key lookup builds the tenant from one raw row (tenants.services._api_key_get), where Django's
        # JSON converter does not run: the column arrives as its text.
        stored = json.loads(stored)
    try:
        return approval_policy_parse(stored)
    except ApplicationError:
        return ApprovalPolicy()


def approval_policy_set(*, tenant: Tenant, policy: object, actor: Actor | None) -> ApprovalPolicy:
    """Replace the tenant's approval policy (a live tenant's sandbox twin follows). Audited as a settings update."""
    from .tenant_settings import tenant_settings_update

    tenant_settings_update(tenant=tenant, changes={"approval_policy": policy}, actor=actor)
    return approval_policy_of(tenant)


def two_factor_requirement_set(*, tenant: Tenant, required: bool, actor: Actor | None) -> Tenant:
    """Require (or stop requiring) two-factor sign-in for the tenant's staff. Audited as a settings update."""
    from .tenant_settings import tenant_settings_update

    return tenant_settings_update(tenant=tenant, changes={"require_two_factor": required}, actor=actor)
