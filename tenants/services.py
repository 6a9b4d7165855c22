"""Writes for tenants and credentials: provisioning (live schema now, sandbox twin's on first use), API keys,
access tokens.

Provisioning, status changes and key issue/revoke/rotate record an audit row in the affected tenant's schema
(the key's own schema for keys: live or sandbox twin), in the transaction that makes the change. Access tokens
are not audited: they are derived from a key (whose issue is), short-lived, and minted on every exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.management import call_command
from django.db import transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django_tenants.utils import get_tenant_base_schema, schema_context, schema_exists

from audit.actors import Actor
from audit.services import audit_action
from core.db import connection
from core.errors import ApplicationError
from core.networks import address_allowed

from .key_cache import key_forget, key_row, keys_changed
from .models import PARTNER_SCOPE, PARTNER_SCOPES, ApiKey, ApiScope, Domain, Tenant, TenantStatus

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
RESERVED_SLUGS = {"public", "www", "api", "admin", "static", "media", "operator", "tenant-template"}
KEY_PREFIXES = {False: "rp_live_", True: "rp_test_"}
KEY_RE = re.compile(r"^rp_(live|test)_([a-z0-9]{12})_([A-Za-z0-9_-]{20,})$")
TOKEN_PREFIX = "rp_at_"
TOKEN_SALT = "rewards_portal.access-token"
# last_used_at is refreshed at most this often per key, so a busy key costs no write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _tenant_apps_migration_count() -> int:
    """How many migrations the tenant apps have on disk (the template must have applied all of them)."""
    from django.apps import apps

    tenant_labels = {apps.get_app_config(name.rsplit(".", 1)[-1]).label for name in settings.TENANT_APPS}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sum(1 for app_label, _ in loader.disk_migrations if app_label in tenant_labels)


def tenant_template_ensure(*, verbosity: int = 0) -> None:
    """Create or migrate the template schema that new tenants are cloned from.

    Cloning + fake-applying keeps provisioning fast however many migrations accumulate. If someone ran
    plain `migrate_schemas` the template could lag behind; we detect that by counting applied migrations
    and migrate it first, so a clone is never older than the code.
    """
    base = get_tenant_base_schema()
    if not schema_exists(base):
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{base}"')
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                "AND table_name = 'django_migrations'",
                [base],
            )
            has_table = cursor.fetchone()[0]
            applied = 0
            if has_table:
                cursor.execute(f'SELECT count(*) FROM "{base}".django_migrations')
                applied = cursor.fetchone()[0]
        if applied >= _tenant_apps_migration_count():
            return
    call_command("migrate_schemas", tenant=True, schema_name=base, interactive=False, verbosity=verbosity)
    connection.set_schema_to_public()


def _validate_new_tenant(*, slug: str, name: str, currency: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not SLUG_RE.match(slug) or "--" in slug or slug.endswith("-sandbox"):
        errors["slug"] = [
            "Use 3-40 lowercase letters, digits and single hyphens, starting with a letter "
            "(and not ending in -sandbox)."
        ]
    elif slug in RESERVED_SLUGS:
        errors["slug"] = [f"'{slug}' is reserved."]
    elif Tenant.objects.filter(slug=slug).exists():
        errors["slug"] = [f"A tenant with slug '{slug}' already exists."]
    if not name.strip():
        errors["name"] = ["The name may not be blank."]
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors["currency"] = ["Use a three-letter ISO 4217 code such as USD."]
    return errors


def tenant_create(*, slug: str, name: str, currency: str = "USD", actor: Actor | None = None) -> Tenant:
    """Provision a tenant: the live schema, its sandbox twin's row and the portal domain, or nothing at all.

    The twin's schema is not made here (`schema_ready=False`): most tenants never use their sandbox, and each
    schema is ~350 relations. `tenant_sandbox_ensure` provisions it on first use. Audited as `tenant.create` in
    the new live schema.
    """
    slug = slug.strip().lower()
    currency = currency.strip().upper()
    errors = _validate_new_tenant(slug=slug, name=name, currency=currency)
    if errors:
        raise ApplicationError(
            "; ".join(msg for msgs in errors.values() for msg in msgs), code="validation_error", errors=errors
        )
    tenant_template_ensure()
    schema = slug.replace("-", "_")
    # django-tenants creates the schema in Tenant.save() (DDL is transactional in PostgreSQL), so one atomic
    # block either provisions the tenant or leaves no trace. The twin's row is saved with schema_ready=False, for
    # which Tenant.create_schema does nothing.
    with transaction.atomic():
        live = Tenant(schema_name=schema, slug=slug, name=name.strip(), default_currency=currency)
        live.save(verbosity=0)
        sandbox = Tenant(
            schema_name=f"{schema}_sandbox",
            slug=slug,
            name=name.strip(),
            default_currency=currency,
            is_sandbox=True,
            live=live,
            schema_ready=False,
        )
        sandbox.save(verbosity=0)
        Domain.objects.create(domain=f"{slug}.{settings.PORTAL_DOMAIN}", tenant=live, is_primary=True)
        with schema_context(live.schema_name):
            audit_action(
                actor=actor, action="tenant.create", object_type="tenant", object_id=slug,
                data={"name": live.name, "currency": currency},
            )  # fmt: skip
    connection.set_schema_to_public()
    logger.info("tenant provisioned", extra={"event": "tenant.created", "tenant_slug": slug})
    return live


def tenant_sandbox_ensure(*, tenant: Tenant) -> Tenant:
    """The sandbox twin of `tenant` (a live tenant or the twin itself), its schema provisioned: call before
    entering a twin to do work in it (a test key issued or used, the portal in sandbox mode, a sandbox deposit).

    Exactly once however many requests or processes arrive at once: the first locks the twin's row (FOR NO KEY
    UPDATE: keys may still be inserted against it), provisions the schema with the current template
    (tenants.provisioning, ~0.3-1 s) and sets `schema_ready` in the same transaction; the others wait on the
    lock and then find it set. Inside a caller's transaction the lock is held, and the schema kept, until that
    transaction ends; rolled back, both go. A twin already ready costs nothing (the flag on the loaded row).
    """
    twin: Tenant = tenant if tenant.is_sandbox else tenant.sandbox
    if twin.schema_ready:
        return twin
    from django_tenants.utils import get_public_schema_name

    from .provisioning import schema_provision

    provisioned = False
    # On the public schema (schema_template_get may migrate the template and leave the connection there), and
    # back to the caller's schema afterwards.
    with schema_context(get_public_schema_name()), transaction.atomic():
        locked = Tenant.objects.select_for_update(no_key=True).filter(pk=twin.pk).values_list("schema_ready").first()
        if locked is None:
            raise ApplicationError("This tenant no longer exists.", code="not_found", status=404)
        if not locked[0]:
            if schema_exists(twin.schema_name):  # not ours to rebuild: an operator restored or kept it
                logger.warning(
                    "sandbox schema already present",
                    extra={"event": "tenant.sandbox_schema_present", "tenant_schema": twin.schema_name},
                )
            else:
                schema_provision(schema_name=twin.schema_name)
            Tenant.objects.filter(pk=twin.pk).update(schema_ready=True)
            keys_changed()  # cached key rows carry the twin's row: routing must see it ready
            provisioned = True
    twin.schema_ready = True
    if provisioned:
        logger.info(
            "sandbox twin provisioned",
            extra={"event": "tenant.sandbox_provisioned", "tenant_slug": twin.slug, "tenant_schema": twin.schema_name},
        )
    return twin


def tenant_set_status(*, tenant: Tenant, status: str, actor: Actor | None = None) -> Tenant:
    """Suspend or reactivate both twins; audited (`tenant.suspend` / `tenant.reactivate`) when it changes."""
    if status not in TenantStatus.values:
        raise ApplicationError(f"Unknown status {status!r}.", code="validation_error")
    with transaction.atomic():
        changed = Tenant.objects.filter(slug=tenant.slug).exclude(status=status).update(status=status)
        if changed:
            keys_changed()
            action = "tenant.suspend" if status == TenantStatus.SUSPENDED else "tenant.reactivate"
            with schema_context(tenant.schema_name):
                audit_action(
                    actor=actor, action=action, object_type="tenant", object_id=tenant.slug, data={"status": status}
                )
    tenant.refresh_from_db()
    return tenant


def _hash_key(raw_key: str) -> str:
    # Keys carry 192 bits of randomness, so a fast unsalted hash is safe (as GitHub/Stripe do).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _parse_scopes(scopes: list[str]) -> list[str]:
    cleaned = sorted({scope.strip() for scope in scopes if scope.strip()})
    unknown = [scope for scope in cleaned if scope not in ApiScope.values]
    if unknown or not cleaned:
        raise ApplicationError(
            f"Scopes must be a non-empty subset of {', '.join(ApiScope.values)}; got {', '.join(scopes) or 'none'}.",
            code="validation_error",
            errors={"scopes": ["Use read, write or read,write."]},
        )
    return cleaned


def _parse_cidrs(cidrs: list[str]) -> list[str]:
    networks = []
    for value in cidrs:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ApplicationError(
                f"{value!r} is not an IP network in CIDR notation (e.g. 203.0.113.0/24).",
                code="validation_error",
                errors={"allowed_cidrs": [f"{value!r} is not a valid CIDR."]},
            ) from None
    return networks


def api_key_create(
    *,
    tenant: Tenant,
    name: str = "default",
    scopes: list[str] | None = None,
    allowed_cidrs: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key for a tenant schema (live or sandbox). Returns the row and the raw key, shown once.

    Only ApiScope scopes: a partner key comes from `partner_key_create` alone, so a tenant (or a rotation of
    a partner key, which copies the scopes) can never mint one. Audited as `api_key.create`.
    """
    scope_list = _parse_scopes(scopes if scopes is not None else ["read", "write"])
    with transaction.atomic():
        key, raw_key = _key_issue(
            tenant=tenant, name=name, scopes=scope_list, allowed_cidrs=allowed_cidrs, expires_at=expires_at
        )
        _key_audit(key, actor=actor, action="api_key.create")
    return key, raw_key


def partner_key_create(
    *,
    tenant: Tenant,
    name: str,
    allowed_cidrs: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: Actor | None = None,
    scope: str = PARTNER_SCOPE,
) -> tuple[ApiKey, str]:
    """Issue a partner's key for a tenant schema: a fulfilment partner's (`shipments:report`: shipment reads and
    tracking reports) or a merchant's (`discounts:report`: discount redemption reports), nothing else.

    Operator only (`manage.py partner_key_create`). Returns the row and the raw key, shown once. Audited as
    `partner_key.create`.
    """
    if not name.strip():
        raise ApplicationError(
            "Name the fulfilment partner (e.g. ShipCo).", code="validation_error", errors={"name": ["Required."]}
        )
    if scope not in PARTNER_SCOPES:
        raise ApplicationError(
            f"A partner key's scope is one of {', '.join(PARTNER_SCOPES)}.",
            code="validation_error",
            errors={"scope": ["Not a partner scope."]},
        )
    with transaction.atomic():
        key, raw_key = _key_issue(
            tenant=tenant, name=name, scopes=[scope], allowed_cidrs=allowed_cidrs, expires_at=expires_at
        )
        _key_audit(key, actor=actor, action="partner_key.create")
    return key, raw_key


def _key_issue(
    *,
    tenant: Tenant,
    name: str,
    scopes: list[str],
    allowed_cidrs: list[str] | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    cidr_list = _parse_cidrs(allowed_cidrs or [])
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", code="validation_error")
    if tenant.is_sandbox:
        tenant_sandbox_ensure(tenant=tenant)  # a test key is the sandbox's first use (its audit row goes there)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(12))
    raw_key = f"{KEY_PREFIXES[tenant.is_sandbox]}{key_id}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(
        key_id=key_id,
        tenant=tenant,
        name=name.strip() or "default",
        key_hash=_hash_key(raw_key),
        last4=raw_key[-4:],
        scopes=scopes,
        allowed_cidrs=cidr_list,
        expires_at=expires_at,
    )
    logger.info(
        "api key created",
        extra={"event": "api_key.created", "key_id": key_id, "tenant_schema": tenant.schema_name, "scopes": scopes},
    )
    return key, raw_key


def _key_audit(
    key: ApiKey, *, actor: Actor | None, action: str, settings_of: ApiKey | None = None, **extra: object
) -> None:
    """The audit row of a key change, in the key's own schema: the settings of `settings_of` (default: the key)
    and `extra`, never a raw key or its hash."""
    shown = settings_of or key
    data = {
        "name": shown.name,
        "scopes": list(shown.scopes),
        "allowed_cidrs": list(shown.allowed_cidrs),
        "expires_at": shown.expires_at.isoformat() if shown.expires_at else None,
        **extra,
    }
    with schema_context(key.tenant.schema_name):
        audit_action(actor=actor, action=action, object_type="api_key", object_id=key.key_id, data=data)


def _key_revoke(key: ApiKey) -> bool:
    """Revoke once: True if this call did (a conditional UPDATE, so two concurrent revokes record one)."""
    now = timezone.now()
    if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
        key.refresh_from_db(fields=["revoked_at"])
        return False
    key.revoked_at = now
    keys_changed()
    logger.info("api key revoked", extra={"event": "api_key.revoked", "key_id": key.key_id})
    return True


def api_key_revoke(*, key: ApiKey, actor: Actor | None = None) -> ApiKey:
    """Revoke a key (an already revoked one is left as it is); audited as `api_key.revoke`."""
    with transaction.atomic():
        if _key_revoke(key):
            _key_audit(key, actor=actor, action="api_key.revoke")
    return key


def api_key_rotate(*, key: ApiKey, actor: Actor | None = None) -> tuple[ApiKey, str]:
    """Replace a key by a new one with the same name, scopes, allowlist and (future) expiry, and revoke it.

    One transaction, one audit row (`api_key.rotate` on the old key, naming the new one). Returns the new row
    and its raw key, shown once. A partner's key cannot be rotated this way: its scope is refused, as on create.
    """
    scope_list = _parse_scopes(list(key.scopes))
    with transaction.atomic():
        if not _key_revoke(key):
            raise ApplicationError(
                "This key is already revoked; create a new one instead.", code="api_key_revoked", status=409
            )
        new_key, raw_key = _key_issue(
            tenant=key.tenant,
            name=key.name,
            scopes=scope_list,
            allowed_cidrs=list(key.allowed_cidrs),
            expires_at=key.expires_at if key.expires_at and key.expires_at > timezone.now() else None,
        )
        _key_audit(key, actor=actor, action="api_key.rotate", settings_of=new_key, new_key_id=new_key.key_id)
    return new_key, raw_key


class CredentialError(ApplicationError):
    def __init__(self, detail: str, *, status: int = 401, code: str = "invalid_credentials") -> None:
        super().__init__(detail, code=code, status=status)


def _check_key_usable(key: ApiKey, *, client_ip: str | None) -> None:
    if key.revoked_at is not None:
        raise CredentialError("This API key has been revoked.", code="key_revoked")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise CredentialError("This API key has expired.", code="key_expired")
    if not key.tenant.is_active or not key.tenant.live_tenant.is_active:
        raise CredentialError("This tenant is suspended.", status=403, code="tenant_suspended")
    if key.allowed_cidrs:
        if not address_allowed(client_ip, key.allowed_cidrs):
            raise CredentialError(
                "Requests from this address are not allowed for this API key.", status=403, code="ip_not_allowed"
            )


def _touch_last_used(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        key_forget(key.key_id)  # the cached row has the old time: it would write again on every request


_KEY_LOOKUP: tuple[str, list[str], list[str]] | None = None


def _key_lookup_sql() -> tuple[str, list[str], list[str]]:
    """SELECT key, tenant, live twin by key_id; built once per process from the models' own columns."""
    global _KEY_LOOKUP
    if _KEY_LOOKUP is None:
        key_fields = [f.column for f in ApiKey._meta.concrete_fields]
        tenant_fields = [f.column for f in Tenant._meta.concrete_fields]
        columns = ", ".join(
            [f'k."{c}"' for c in key_fields] + [f't."{c}"' for c in tenant_fields] + [f'l."{c}"' for c in tenant_fields]
        )
        pk, table = Tenant._meta.pk.column, Tenant._meta.db_table
        tenant_fk, live_fk = ApiKey._meta.get_field("tenant").column, Tenant._meta.get_field("live").column
        sql = (
            f'SELECT {columns} FROM "{ApiKey._meta.db_table}" k JOIN "{table}" t ON t."{pk}" = k."{tenant_fk}" '
            f'LEFT JOIN "{table}" l ON l."{pk}" = t."{live_fk}" WHERE k."key_id" = %s'
        )
        _KEY_LOOKUP = (
            sql,
            [f.attname for f in ApiKey._meta.concrete_fields],
            [f.attname for f in Tenant._meta.concrete_fields],
        )
    return _KEY_LOOKUP


def _api_key_row(key_id: str) -> tuple[Any, ...] | None:
    sql, _, _ = _key_lookup_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_id])
        row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def _api_key_get(*, key_id: str) -> ApiKey | None:
    """The key with its tenant and the tenant's live twin loaded, as
    `ApiKey.objects.select_related("tenant", "tenant__live")`, in one prebuilt statement: this runs on every API
    request, and compiling that queryset cost more CPU than the query (~1 ms a request). The row comes from this
    process's cache while no key or tenant has changed (tenants.key_cache); the instances are new each time,
    so a request may change them (a token narrows `scopes`) without touching another's."""
    _, key_names, tenant_names = _key_lookup_sql()
    row = key_row(key_id, _api_key_row)
    if row is None:
        return None
    k, t = len(key_names), len(tenant_names)
    key = ApiKey.from_db(connection.alias, key_names, row[:k])
    tenant = Tenant.from_db(connection.alias, tenant_names, row[k : k + t])
    live_values = row[k + t :]
    tenant.live = Tenant.from_db(connection.alias, tenant_names, live_values) if live_values[0] is not None else None
    key.tenant = tenant
    return key


def api_key_authenticate(*, raw_key: str, client_ip: str | None) -> ApiKey:
    """Resolve a raw `rp_live_…`/`rp_test_…` key to its ApiKey (with tenant), or raise CredentialError."""
    match = KEY_RE.match(raw_key)
    if not match:
        raise CredentialError("The API key is malformed or unknown.")
    key = _api_key_get(key_id=match.group(2))
    if key is None or not hmac.compare_digest(key.key_hash, _hash_key(raw_key)):
        raise CredentialError("The API key is malformed or unknown.")
    _check_key_usable(key, client_ip=client_ip)
    _touch_last_used(key)
    return key


def access_token_issue(
    *, client_id: str, client_secret: str, client_ip: str | None, scopes: list[str] | None = None
) -> dict[str, Any]:
    """OAuth2 client credentials: the full key is the secret, its key_id the client id. `scopes` narrows the
    token to some of the key's scopes (OAuth `scope`); asking for one the key lacks is `invalid_scope`."""
    key = api_key_authenticate(raw_key=client_secret, client_ip=client_ip)
    if not hmac.compare_digest(key.key_id, client_id or ""):
        raise CredentialError("client_id does not match client_secret.")
    payload: dict[str, Any] = {"k": key.key_id}  # signed into the token
    granted = list(key.scopes)
    if scopes is not None:
        missing = sorted(set(scopes) - set(key.scopes))
        if missing:
            raise ApplicationError(
                f"This API key does not have the scope {', '.join(missing)}; it has {' '.join(key.scopes)}.",
                code="invalid_scope",
                status=400,
                errors={"scope": [f"Not a scope of this key: {', '.join(missing)}."]},
            )
        granted = [scope for scope in key.scopes if scope in scopes]
        payload["s"] = granted
    ttl = int(settings.ACCESS_TOKEN_TTL.total_seconds())
    token = TOKEN_PREFIX + signing.dumps(payload, salt=TOKEN_SALT, compress=False)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": " ".join(granted)}


def access_token_authenticate(*, token: str, client_ip: str | None) -> ApiKey:
    """A bearer token is only as good as its key: revoking the key revokes its tokens."""
    try:
        payload = signing.loads(
            token.removeprefix(TOKEN_PREFIX),
            salt=TOKEN_SALT,
            max_age=settings.ACCESS_TOKEN_TTL,
        )
    except signing.SignatureExpired:
        raise CredentialError("The access token has expired; request a new one.", code="token_expired") from None
    except signing.BadSignature:
        raise CredentialError("The access token is invalid.") from None
    key = _api_key_get(key_id=str(payload.get("k")))
    if key is None:
        raise CredentialError("The access token is invalid.")
    _check_key_usable(key, client_ip=client_ip)
    if "s" in payload:  # a token narrowed at issue: the key's scopes now, within those granted then
        key.scopes = [scope for scope in key.scopes if scope in payload["s"]]
    _touch_last_used(key)
    return key


def credential_authenticate(*, credential: str, client_ip: str | None) -> ApiKey:
    if credential.startswith(TOKEN_PREFIX):
        return access_token_authenticate(token=credential, client_ip=client_ip)
    return api_key_authenticate(raw_key=credential, client_ip=client_ip)


def tenant_for_schema(schema_name: str) -> Tenant:
    tenant: Tenant = Tenant.objects.select_related("live").get(schema_name=schema_name)
    return tenant


def tenant_get(*, slug: str, sandbox: bool = False) -> Tenant:
    tenant: Tenant | None = Tenant.objects.filter(slug=slug, is_sandbox=sandbox).first()
    if tenant is None:
        raise ApplicationError(f"No tenant with slug '{slug}'.", code="not_found", status=404)
    return tenant


__all__ = [
    "access_token_authenticate",
    "access_token_issue",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "credential_authenticate",
    "partner_key_create",
    "schema_context",
    "tenant_create",
    "tenant_get",
    "tenant_sandbox_ensure",
    "tenant_set_status",
    "tenant_template_ensure",
]
