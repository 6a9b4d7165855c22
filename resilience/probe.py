"""Run inside a resilience stack's environment (`python -m resilience.probe ...`): set a tenant up, or report
what its database holds. Prints one JSON line.

    setup --funds 50000.00 [--webhook URL]   tenant + API key + catalogue + deposit (+ webhook endpoint)
    inspect --slug SLUG                        counts, balance, ledger invariants, orphans, recipients
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup(funds: str, webhook: str | None) -> dict:
    from django_tenants.utils import tenant_context

    from funds.services import funds_deposit
    from tenants.services import api_key_create, tenant_create
    from testsupport.catalog import make_shop

    slug = f"res-{uuid.uuid4().hex[:8]}"
    tenant = tenant_create(slug=slug, name=f"Resilience {slug}")
    _, key = api_key_create(tenant=tenant)
    shop = make_shop()
    with tenant_context(tenant):
        funds_deposit(currency="USD", amount=funds)
        if webhook:
            from webhooks.endpoints import webhook_endpoint_create

            webhook_endpoint_create(url=webhook, events=["order.created"])
    return {"slug": slug, "schema": tenant.schema_name, "key": key, "product_id": str(shop.coffee_usd.id)}


def inspect(slug: str) -> dict:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from funds.models import Hold
    from funds.selectors import balance_get, ledger_invariant_violations
    from orders.models import IdempotencyRecord, Order, Reward
    from tenants.models import Tenant
    from webhooks.models import Event, WebhookDelivery

    report: dict = {}
    for tenant in Tenant.objects.with_schema().filter(slug=slug).order_by("is_sandbox"):  # a twin never used: none
        with tenant_context(tenant):
            balance = balance_get(currency="USD")
            rewards = list(Reward.objects.values_list("status", "recipient_email", "hold_id", "order_id"))
            hold_ids = {h for _, _, h, _ in rewards}
            orders = list(Order.objects.values_list("id", flat=True))
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM orders_order o WHERE NOT EXISTS "
                               "(SELECT 1 FROM orders_reward r WHERE r.order_id = o.id)")  # fmt: skip
                orders_without_rewards = cursor.fetchone()[0]
            statuses: dict[str, int] = {}
            for status, *_ in rewards:
                statuses[status] = statuses.get(status, 0) + 1
            holds: dict[str, int] = {}
            for status in Hold.objects.values_list("status", flat=True):
                holds[status] = holds.get(status, 0) + 1
            deliveries: dict[str, int] = {}
            for status in WebhookDelivery.objects.values_list("status", flat=True):
                deliveries[status] = deliveries.get(status, 0) + 1
            report["sandbox" if tenant.is_sandbox else "live"] = {
                "violations": ledger_invariant_violations(),
                "available": str(balance.available) if balance else "0",
                "held": str(balance.held) if balance else "0",
                "orders": len(orders),
                "orders_without_rewards": orders_without_rewards,
                "rewards": statuses,
                "rewards_without_hold": sum(1 for _, _, h, _ in rewards if h is None),
                "holds": holds,
                "holds_without_reward": Hold.objects.exclude(id__in=hold_ids).count(),
                "idempotency_records": IdempotencyRecord.objects.count(),
                "order_events": Event.objects.filter(type="order.created").count(),
                "webhook_deliveries": deliveries,
                "recipients": sorted(email for _, email, _, _ in rewards),
                "order_ids": sorted(str(pk) for pk in orders),
            }
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["setup", "inspect"])
    parser.add_argument("--funds", default="0")
    parser.add_argument("--webhook")
    parser.add_argument("--slug")
    args = parser.parse_args()
    import django

    django.setup()
    result = setup(args.funds, args.webhook) if args.command == "setup" else inspect(args.slug)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
