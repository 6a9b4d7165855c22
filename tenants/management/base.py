"""Base for operator commands: a domain refusal becomes a clear error on stderr and a non-zero exit."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError


class OperatorCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ApplicationError as exc:
            raise CommandError(exc.detail, returncode=2 if exc.code == "validation_error" else 1) from None

    def handle_tenant(self, slug: str, *, sandbox: bool = False):
        """The tenant named by `slug`, or its sandbox twin (`--sandbox`), provisioned first if never used."""
        from tenants.services import tenant_get, tenant_sandbox_ensure

        tenant = tenant_get(slug=slug, sandbox=sandbox)
        return tenant_sandbox_ensure(tenant=tenant) if sandbox else tenant
