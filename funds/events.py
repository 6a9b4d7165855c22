"""Hooks where funds changes announce themselves (balance.credited, balance.low).

The webhooks app plugs its outbox in here; until then these are no-ops. They run inside the posting's
transaction, so an event is recorded exactly when the change commits.
"""

from __future__ import annotations

from decimal import Decimal


def on_deposit(*, currency: str, amount: Decimal) -> None:
    return None


def on_available_decreased(*, currency: str) -> None:
    return None
