from django.core.management import call_command
from django.core.management.base import BaseCommand

from tenants.services import tenant_template_ensure


class Command(BaseCommand):
    help = "Migrate the public schema, the tenant template schema, then every tenant schema."

    def handle(self, *args, **options) -> None:
        verbosity = options["verbosity"]
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        tenant_template_ensure(verbosity=verbosity)
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=verbosity)
