"""Dropping the schema of a sandbox twin that holds nothing, so it is provisioned again on its next first use.

Installations from before lazy twins have a twin schema for every tenant, used or not (~350 `pg_class` rows and
~3 MB each). A twin is released only when nothing in or about it was ever kept: no API key (revoked ones count: a
revoked key's row names the twin), no claim link, and every table of its schema as provisioning left it (the
seeded tables hold exactly the template's rows, every other table is empty). Such a schema is the template and
nothing else, so dropping it loses nothing; the next first use makes it again (tenants.services.
tenant_sandbox_ensure).

Each twin is released in a transaction of its own, under the same row lock as provisioning (so a first use
waits, then provisions a fresh schema) and with every table of the schema locked before it is checked (so no
write can land between the check and the drop). A table another transaction holds longer than LOCK_TIMEOUT is
a busy twin: it is left as it is, and a later run tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import OperationalError, transaction
from django_tenants.utils import get_public_schema_name, get_tenant_base_schema, schema_context

from audit.actors import Actor
from audit.services import audit_action
from core.db import connection

from .key_cache import keys_changed
from .models import ApiKey, ClaimTokenIndex, Tenant, TenantDueEvent

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = "5s"  # waiting longer than this for a twin's table means someone is using it: skip it


@dataclass(frozen=True)
class ReleaseResult:
    slug: str
    released: bool
    reason: str  # why a twin was kept ("" when released)


def _tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
        return [row[0] for row in cursor.fetchall()]


def _row_counts(schema: str, tables: list[str]) -> dict[str, int]:
    """Rows per table, in one statement (a round trip per table would be ~60 per twin)."""
    if not tables:
        return {}
    parts = [f'(SELECT count(*) FROM "{schema}"."{table}")' for table in tables]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}")
        row = cursor.fetchone()
    return dict(zip(tables, (int(value) for value in row), strict=True))


def _template_counts() -> dict[str, int]:
    base = get_tenant_base_schema()
    return _row_counts(base, _tables(base))


def _why_kept(twin: Tenant, template: dict[str, int]) -> str:
    """'' when the twin's schema is the template and nothing names the twin; else what was found."""
    if ApiKey.objects.filter(tenant=twin).exists():
        return "it has API keys"
    if ClaimTokenIndex.objects.filter(tenant=twin).exists():
        return "it has claim links"
    tables = _tables(twin.schema_name)
    if set(tables) != set(template):
        return "its tables differ from the template's (run platform_migrate first)"
    counts = _row_counts(twin.schema_name, tables)
    changed = sorted(table for table, rows in counts.items() if rows != template[table])
    if changed:
        return f"it holds data ({', '.join(changed[:3])}{', …' if len(changed) > 3 else ''})"
    return ""


def sandbox_release(*, twin: Tenant, actor: Actor | None, dry_run: bool = False) -> ReleaseResult:
    """Drop `twin`'s schema if it holds nothing (module doc); audited as `tenant.sandbox_release` in the live
    schema. `dry_run` checks without locking or changing anything."""
    if not twin.is_sandbox:
        raise ValueError("only a sandbox twin's schema is ever released")
    with schema_context(get_public_schema_name()):
        template = _template_counts()
        if dry_run:
            reason = _why_kept(twin, template) if twin.schema_ready else "it has no schema"
            return ReleaseResult(twin.slug, not reason, reason)
        try:
            with transaction.atomic():
                locked = (
                    Tenant.objects.select_for_update(no_key=True)
                    .filter(pk=twin.pk)
                    .values_list("schema_ready", flat=True)
                    .first()
                )
                if not locked:
                    return ReleaseResult(twin.slug, False, "it has no schema")
                tables = _tables(twin.schema_name)
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    if tables:
                        names = ", ".join(f'"{twin.schema_name}"."{table}"' for table in tables)
                        cursor.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                reason = _why_kept(twin, template)
                if reason:
                    return ReleaseResult(twin.slug, False, reason)
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA "{twin.schema_name}" CASCADE')
                Tenant.objects.filter(pk=twin.pk).update(schema_ready=False)
                TenantDueEvent.objects.filter(schema_name=twin.schema_name).delete()
                keys_changed()
                live = twin.live_tenant
                with schema_context(live.schema_name):
                    audit_action(
                        actor=actor, action="tenant.sandbox_release", object_type="tenant", object_id=twin.slug,
                        data={"schema": twin.schema_name},
                    )  # fmt: skip
        except OperationalError as exc:  # lock_timeout (someone is in the twin) or a deadlock: try another time
            logger.warning(
                "sandbox twin busy, kept",
                extra={"event": "tenant.sandbox_release_busy", "tenant_schema": twin.schema_name, "error": str(exc)},
            )
            return ReleaseResult(twin.slug, False, "it is in use (a table stayed locked)")
    twin.schema_ready = False
    logger.info(
        "sandbox twin released",
        extra={"event": "tenant.sandbox_released", "tenant_slug": twin.slug, "tenant_schema": twin.schema_name},
    )
    return ReleaseResult(twin.slug, True, "")
