"""The tenant's own settings (GET|PATCH /api/v1/tenant): what each field accepts, and the one write that changes
them. A new setting is a model field plus an entry in SETTINGS (its cleaner); the API serializers list it too.

A live tenant's settings are written to its sandbox twin as well, so either schema reads its own row (order
creation reads the language without a second query). A sandbox credential changes the sandbox row only: the
sandbox never changes the live company.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError
from core.i18n import locale_normalize, supported_locales
from core.text import control_character_error
from core.zones import zone_valid

from .key_cache import keys_changed
from .models import Tenant


class SettingRefused(ValueError):
    """A value a setting does not accept; the message says what it does."""


def _name(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise SettingRefused(_("The name may not be blank."))
    if len(text) > 200:
        raise SettingRefused(_("At most %(limit)d characters.") % {"limit": 200})
    problem = control_character_error(text)
    if problem:
        raise SettingRefused(problem)
    return text


def _default_locale(value: object) -> str:
    if value in (None, ""):
        return ""  # none: the recipient's browser decides
    locale = locale_normalize(value)
    if not isinstance(value, str) or not locale:
        raise SettingRefused(_("One of %(locales)s, or empty for none.") % {"locales": ", ".join(supported_locales())})
    return locale


def _timezone(value: object) -> str:
    if not zone_valid(value):
        raise SettingRefused(_("An IANA time zone name such as Asia/Kuala_Lumpur or UTC."))
    return str(value)


def _approval_policy(value: object) -> dict[str, Any]:
    from .policies import approval_policy_parse

    try:
        return approval_policy_parse(value).as_json()
    except ApplicationError as exc:
        raise SettingRefused(exc.detail) from None


def _require_two_factor(value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingRefused(_("true or false."))
    return value


# field -> cleaner (the value as given → the value to store, or SettingRefused)
SETTINGS: dict[str, Callable[[object], Any]] = {
    "name": _name,
    "default_locale": _default_locale,
    "timezone": _timezone,
    "approval_policy": _approval_policy,  # maker–checker (tenants.policies)
    "require_two_factor": _require_two_factor,  # staff must enrol in two-factor at sign-in
}
# Settings that guard money or sign-in: over the API they need a key with the `approve` scope, so a key that
# places orders cannot lift the approval rule it is subject to.
PROTECTED_SETTINGS = frozenset({"approval_policy", "require_two_factor"})


def tenant_settings_get(*, tenant: Tenant) -> dict[str, Any]:
    from .policies import approval_policy_of

    shown = {field: getattr(tenant, field) for field in SETTINGS}
    shown["approval_policy"] = approval_policy_of(tenant).as_json()  # normalised (the API's key lookup reads text)
    return shown


def tenant_settings_update(*, tenant: Tenant, changes: Mapping[str, Any], actor: Actor | None) -> Tenant:
    """Apply `changes` (fields of SETTINGS) to the tenant, and to its sandbox twin when it is the live row.
    Every field is checked before anything is written: a refusal (422, per field) changes nothing."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        cleaner = SETTINGS.get(field)
        if cleaner is None:
            errors[field] = [_("Not a setting.")]
            continue
        try:
            clean[field] = cleaner(value)
        except SettingRefused as exc:
            errors[field] = [str(exc)]
    if errors:
        raise ApplicationError(
            "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()),
            code="validation_error",
            errors=errors,
        )
    changed = {field: value for field, value in clean.items() if getattr(tenant, field) != value}
    if not changed:
        return tenant
    with transaction.atomic():
        rows = (
            [tenant.pk]
            if tenant.is_sandbox
            else [tenant.pk, *Tenant.objects.filter(live=tenant).values_list("pk", flat=True)]
        )
        Tenant.objects.filter(pk__in=rows).update(**changed)
        keys_changed()  # API requests carry the tenant from the key cache
        for field, value in changed.items():
            setattr(tenant, field, value)
        audit_action(actor=actor, action="tenant.settings_update", object_type="tenant", object_id=tenant.slug,
                     data={"changed": sorted(changed), **changed})  # fmt: skip
    return tenant
