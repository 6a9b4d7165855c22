"""Batch kinds that later stages bring (points awards): their CSV columns, row validation and chunk, registered in
their AppConfig.ready() so the bulk machinery (upload, preview, per-row errors, confirm with one funds hold,
chunked processing, progress, errors.csv) serves them without importing them.

A registered kind's rows carry a currency and a charge like a reward row: confirming its batch holds their total
(batches.lifecycle), and each chunk takes its rows' money out of that hold (funds.services.funds_hold_split_many).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .csvfile import ValidRow
    from .models import Batch, BatchHold


class KindRowValidator(Protocol):
    def validate(self, cells: dict[str, str], row_number: int) -> tuple[ValidRow | None, list[tuple[str, str]]]: ...


@dataclass(frozen=True)
class BatchKindHandler:
    columns: list[str]
    required: list[str]
    template: str  # where the template lives, named in a missing-column error
    validator: Callable[[Batch], KindRowValidator]
    # Apply the next `chunk` pending rows in the caller's transaction (the batch locked, its holds by currency):
    # (rows handled, of them failed, last row number), or None when no row is pending.
    chunk: Callable[[Batch, int, dict[str, BatchHold]], tuple[int, int, int] | None]


_handlers: dict[str, BatchKindHandler] = {}


def batch_kind_register(kind: str, handler: BatchKindHandler) -> None:
    _handlers[kind] = handler


def batch_kind_handler(kind: str) -> BatchKindHandler | None:
    return _handlers.get(kind)
