"""Supplier adapters: one interface (issue / issue_many / status / void) over sandbox, inventory and HTTP vendors."""

from .base import (
    IssuedCode,
    IssueRequest,
    IssueResults,
    SupplierAdapter,
    SupplierError,
    SupplierRejected,
    SupplierUnavailable,
    adapter_for,
    issue_each,
    register_adapter,
)

__all__ = [
    "IssueRequest",
    "IssueResults",
    "IssuedCode",
    "SupplierAdapter",
    "SupplierError",
    "SupplierRejected",
    "SupplierUnavailable",
    "adapter_for",
    "issue_each",
    "register_adapter",
]
