from django_tenants.utils import tenant_context

from accounts.services import staff_create
from audit.actors import Actor
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Create a portal user in a tenant; prints the email (and a generated password on stderr)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("email")
        parser.add_argument("--role", required=True, choices=["admin", "manager", "finance", "viewer"])
        parser.add_argument("--password", default=None)
        parser.add_argument("--name", default="")

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"])
        with tenant_context(tenant):
            user, password = staff_create(
                email=options["email"],
                role=options["role"],
                password=options["password"],
                name=options["name"],
                actor=Actor.cli(),
            )
        if options["password"] is None:
            self.stderr.write(f"generated password: {password}")
        return user.email
