from audit.actors import Actor
from tenants.management.base import OperatorCommand
from tenants.services import tenant_create


class Command(OperatorCommand):
    help = "Create a tenant with its sandbox twin and portal domain; prints the slug."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--currency", default="USD")

    def handle(self, *args, **options) -> str:
        tenant = tenant_create(
            slug=options["slug"], name=options["name"], currency=options["currency"], actor=Actor.cli()
        )
        return tenant.slug
