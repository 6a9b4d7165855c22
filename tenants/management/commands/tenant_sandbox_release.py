"""`manage.py tenant_sandbox_release [SLUG ...] [--dry-run]`: drop the schemas of sandbox twins that hold nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from audit.actors import Actor
from tenants.management.base import OperatorCommand
from tenants.models import Tenant
from tenants.sandbox_release import sandbox_release


class Command(OperatorCommand):
    help = (
        "Drop the schema of each sandbox twin that holds nothing (no keys, no claim links, every table as "
        "provisioned), so it is provisioned again on its next first use. Every tenant's twin, or the SLUGs given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", metavar="SLUG")
        parser.add_argument("--dry-run", action="store_true", help="say what would be released; change nothing")

    def handle(self, *args: Any, **options: Any) -> str:
        twins = Tenant.objects.with_schema().filter(is_sandbox=True).select_related("live").order_by("slug")
        if options["slugs"]:
            twins = twins.filter(slug__in=options["slugs"])
        actor = Actor.cli()
        released = kept = 0
        for twin in twins:
            result = sandbox_release(twin=twin, actor=actor, dry_run=options["dry_run"])
            if result.released:
                released += 1
                self.stdout.write(f"{'would release' if options['dry_run'] else 'released'} {twin.slug}")
            else:
                kept += 1
                if options["verbosity"] > 1:
                    self.stdout.write(f"kept {twin.slug}: {result.reason}")
        verb = "would be released" if options["dry_run"] else "released"
        return f"{released} sandbox twin(s) {verb}, {kept} kept"
