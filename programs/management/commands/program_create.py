"""`program_create SLUG PROGRAM_SLUG --name N [--sandbox] …`: a reward program in a tenant; prints its slug."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from programs.services import program_create
from tenants.management.base import OperatorCommand


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(OperatorCommand):
    help = "Create a reward program in a tenant (its sandbox twin with --sandbox); prints the program slug."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="tenant slug")
        parser.add_argument("program_slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--sandbox", action="store_true")
        parser.add_argument("--budget", default=None, help="budget amount, e.g. 5000.00 (omit: unlimited)")
        parser.add_argument("--currency", default="", help="budget currency (ISO 4217)")
        parser.add_argument("--period", default="none", choices=["monthly", "quarterly", "yearly", "none"])
        parser.add_argument("--products", default="", type=_csv, help="allowed product ids, comma separated")
        parser.add_argument("--message", default="", help="default message to recipients")
        parser.add_argument("--sender-name", default="")
        parser.add_argument("--logo-url", default="")
        parser.add_argument("--primary-color", default="")
        parser.add_argument("--inactive", action="store_true")

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        branding = {"logo_url": options["logo_url"], "primary_color": options["primary_color"]}
        with tenant_context(tenant):
            program = program_create(
                slug=options["program_slug"],
                name=options["name"],
                budget_amount=options["budget"],
                budget_currency=options["currency"],
                budget_period=options["period"],
                allowed_product_ids=options["products"],
                default_message=options["message"],
                sender_name=options["sender_name"],
                branding={key: value for key, value in branding.items() if value},
                is_active=not options["inactive"],
            )
        return program.slug
