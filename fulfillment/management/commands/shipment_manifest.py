"""Operator command: the day's manifest of queued shipments for one carrier (CSV for the fulfilment partner)."""

from __future__ import annotations

import argparse
from datetime import date

from django_tenants.utils import tenant_context

from fulfillment.manifests import shipment_manifest
from tenants.management.base import OperatorCommand


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


class Command(OperatorCommand):
    help = (
        "Print (or write to --output) the CSV manifest of a tenant's shipments handed to fulfilment on --day "
        "for --carrier; prints the number of shipments on stderr."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--day", type=_day, required=True, help="YYYY-MM-DD")
        parser.add_argument("--carrier", required=True, help="e.g. Parcelway")
        parser.add_argument("--sandbox", action="store_true")
        parser.add_argument("--output", help="write the CSV to this file instead of stdout")

    def handle(self, *args, **options) -> None:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        with tenant_context(tenant):
            content, count = shipment_manifest(day=options["day"], carrier=options["carrier"])
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
        else:
            self.stdout.write(content, ending="")
        self.stderr.write(str(count))
