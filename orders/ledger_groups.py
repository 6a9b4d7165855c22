"""The ledger grouped by what caused it: every hold, capture, release and refund of an order's rewards on one
line with their totals, a bulk batch's own hold on another, deposits as they are. For the Funds statement's
"by order" view and its export; one GROUP BY over the period's ledger lines of one currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from funds.models import LedgerTransaction

from .models import Order, Reward

GROUPS_SHOWN = 200  # the newest groups of the period; the export has the same cap per request


@dataclass(frozen=True)
class LedgerGroup:
    key: str  # "order:<uuid>", "batch:<uuid>" or "txn:<uuid>"
    first_at: datetime
    last_at: datetime
    lines: int
    held: Decimal
    spent: Decimal
    released: Decimal
    refunded: Decimal
    deposited: Decimal
    label: str = ""

    @property
    def net(self) -> Decimal:
        """How the group moved the posted balance (holds and releases leave it as it was)."""
        return self.deposited + self.refunded - self.spent


def ledger_groups(*, currency: str, since: datetime | None, until: datetime | None) -> list[LedgerGroup]:
    clauses, params = ["t.currency = %s"], [currency]
    if since is not None:
        clauses.append("t.created_at >= %s")
        params.append(since)  # type: ignore[arg-type]
    if until is not None:
        clauses.append("t.created_at < %s")
        params.append(until)  # type: ignore[arg-type]
    sums = ", ".join(
        f"coalesce(sum(t.amount) FILTER (WHERE t.kind = '{kind}'), 0)"
        for kind in ("hold", "capture", "release", "refund", "deposit")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce('order:' || r.order_id::text, CASE WHEN t.reference LIKE 'batch:%%' THEN t.reference "
            f"ELSE 'txn:' || t.id::text END) AS grp, min(t.created_at), max(t.created_at), count(*), {sums} "
            f"FROM {LedgerTransaction._meta.db_table} t LEFT JOIN {Reward._meta.db_table} r ON r.id = ("
            "CASE WHEN t.reference ~ '^reward:[0-9a-fA-F-]{36}$' THEN substr(t.reference, 8)::uuid END) "
            f"WHERE {' AND '.join(clauses)} GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT %s",
            [*params, GROUPS_SHOWN],
        )
        groups = [LedgerGroup(*row) for row in cursor.fetchall()]
    return _labelled(groups)


def _labelled(groups: list[LedgerGroup]) -> list[LedgerGroup]:
    order_ids = [g.key.split(":", 1)[1] for g in groups if g.key.startswith("order:")]
    orders = {
        str(o.id): o for o in Order.objects.filter(pk__in=order_ids).only("id", "external_id", "po_number", "type")
    }
    batch_ids = [g.key.split(":", 1)[1] for g in groups if g.key.startswith("batch:")]
    from django.apps import apps

    # Batches are a later stage (they import orders): read by model name, not imported.
    batch_model = apps.get_model("batches", "Batch")
    batches = {str(pk): name or file_name for pk, name, file_name in
               batch_model.objects.filter(pk__in=batch_ids).values_list("id", "name", "file_name")}  # fmt: skip
    labelled = []
    for group in groups:
        kind, _, ident = group.key.partition(":")
        if kind == "order" and ident in orders:
            order = orders[ident]
            label = f"Order {ident[:8]}" + (f" · {order.external_id}" if order.external_id else "")
            label += f" · PO {order.po_number}" if order.po_number else ""
        elif kind == "batch":
            label = f"Batch {batches.get(ident) or ident[:8]}"
        else:
            label = "Deposit" if group.deposited else "Ledger line"
        labelled.append(LedgerGroup(**{**group.__dict__, "label": label}))
    return labelled
