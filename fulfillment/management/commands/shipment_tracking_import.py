"""Operator command: apply a fulfilment partner's tracking file to a tenant's shipments."""

from __future__ import annotations

from django.core.management.base import CommandError
from django_tenants.utils import tenant_context

from fulfillment.shipments import TRACKING_IMPORT_COLUMNS, shipment_tracking_import
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = (
        f"Apply a tracking CSV ({','.join(TRACKING_IMPORT_COLUMNS)}) to a tenant's shipments, one row at a "
        "time. Prints applied/unchanged/failed and each bad row on stderr; exits 1 if any row failed "
        "(the good rows are applied all the same). Re-importing a file is harmless."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("path")
        parser.add_argument("--sandbox", action="store_true")

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        try:
            with tenant_context(tenant):
                result = shipment_tracking_import(path=options["path"])
        except OSError as exc:
            raise CommandError(f"Cannot read {options['path']}: {exc.strerror or exc}", returncode=2) from None
        for error in result.errors:
            self.stderr.write(f"row {error.row}: {error.shipment_id or '-'}: {error.code}: {error.message}")
        summary = f"applied={result.applied} unchanged={result.unchanged} failed={result.failed}"
        if result.failed:
            self.stdout.write(summary)
            raise CommandError(f"{result.failed} row(s) failed; the other rows were applied.", returncode=1)
        return summary
