"""Operator command: record one tracking or status report for a shipment (e.g. a partner's phone call or email).

The same path as the partner's callback and tracking file: validated like a tracking-file row, then applied by
`tracking_update_apply`, so a report already recorded changes nothing, an impossible move is refused and
a `returned` report refunds at most once.
"""

from __future__ import annotations

from django_tenants.utils import tenant_context

from fulfillment.shipments import TRACKING_STATUSES, tracking_update_apply, tracking_update_parse
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = (
        "Record a fulfilment partner's report for one of a tenant's shipments "
        f"(status: {', '.join(TRACKING_STATUSES)}). Prints the shipment's status afterwards and whether the "
        "report changed it. Reporting the same thing twice is harmless."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("shipment_id")
        parser.add_argument("status", help=", ".join(TRACKING_STATUSES))
        parser.add_argument("--sandbox", action="store_true")
        parser.add_argument("--tracking-number", default="")
        parser.add_argument("--description", default="")
        parser.add_argument("--location", default="")
        parser.add_argument("--occurred-at", default="", help="ISO 8601, e.g. 2026-11-23T09:00:00Z; default now")

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        update = tracking_update_parse(
            {
                "shipment_id": options["shipment_id"],
                "status": options["status"],
                "tracking_number": options["tracking_number"],
                "description": options["description"],
                "location": options["location"],
                "occurred_at": options["occurred_at"],
            }
        )
        with tenant_context(tenant):
            shipment, changed = tracking_update_apply(update)
        return f"{shipment.status} {'changed' if changed else 'unchanged'}"
