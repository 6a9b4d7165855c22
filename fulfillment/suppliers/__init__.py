"""Supplier adapters: one interface (issue / status / void) over sandbox, code inventory and HTTP vendors."""

from .base import (
    IssuedCode,
    SupplierAdapter,
    SupplierError,
    SupplierRejected,
    SupplierUnavailable,
    adapter_for,
    register_adapter,
)

__all__ = [
    "IssuedCode",
    "SupplierAdapter",
    "SupplierError",
    "SupplierRejected",
    "SupplierUnavailable",
    "adapter_for",
    "register_adapter",
]
