"""Operator command: issue a fulfilment partner's key for a tenant (the only way such a key comes to exist)."""

from datetime import timedelta

from django.utils import timezone

from audit.actors import Actor
from tenants.management.base import OperatorCommand
from tenants.models import PARTNER_SCOPE, PARTNER_SCOPES
from tenants.services import partner_key_create


class Command(OperatorCommand):
    help = (
        "Issue a fulfilment partner's key for a tenant (rp_live_… or, with --sandbox, rp_test_…): it can read "
        "the tenant's shipments and report their tracking and status, nothing else. Prints the key alone on the "
        "last line, once; revoke it in the operator admin (API keys). With --scope discounts:report it is a "
        "merchant's key instead: it reports discount codes used at the merchant, nothing else."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True, help='the partner, e.g. "ShipCo"')
        parser.add_argument("--sandbox", action="store_true")
        parser.add_argument("--allow-cidr", action="append", default=[], help="repeatable, e.g. 203.0.113.0/24")
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--scope", choices=PARTNER_SCOPES, default=PARTNER_SCOPE)

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        days = options["expires_in_days"]
        _, raw_key = partner_key_create(
            tenant=tenant,
            name=options["name"],
            allowed_cidrs=options["allow_cidr"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            actor=Actor.cli(),
            scope=options["scope"],
        )
        return raw_key
