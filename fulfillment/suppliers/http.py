"""Generic HTTP supplier for real vendors: one JSON API shape, configured per Supplier row.

Supplier config (no secrets in the database — the credential is read from an environment variable):
  {"base_url": "https://vendor.example/api", "api_key_env": "ACME_VENDOR_KEY", "timeout_seconds": 10,
   "sku_map": {"<product uuid>": "<vendor sku>"}, "void_path": "/orders/{reference}/cancel"}

  POST {base_url}/orders  {"reference", "sku", "amount", "currency"}
       headers Idempotency-Key: <reference>, Authorization: Bearer <key>
       200/201 → {"code", "pin", "id", "expires_at"}; 409 (reference already used) → GET the order.
  GET  {base_url}/orders/{reference}          → the same body, plus "status"
  POST {base_url}{void_path}                 → 2xx: the card is voided (only if void_path is configured;
                                               without it a cancel after issue is refused, never refunded)

408, 429, 5xx, timeouts and connection errors are SupplierUnavailable (Retry-After honoured); any other
4xx is SupplierRejected with the vendor's message. Codes, PINs and the credential never reach a message
or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
from django.utils.dateparse import parse_datetime

from core.http import retry_after_seconds
from core.logging import redact

from .base import (
    IssuedCode,
    IssueRequest,
    IssueResults,
    SupplierRejected,
    SupplierUnavailable,
    issue_each,
    register_adapter,
)
from .inventory import sandbox_twin_active

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 64 * 1024  # a vendor's answer is a few hundred bytes; more is a fault, not a code
RETRYABLE_STATUSES = {408, 425, 429}
STATUS_MAP = {
    "issued": "issued",
    "completed": "issued",
    "fulfilled": "issued",
    "pending": "pending",
    "processing": "pending",
    "canceled": "canceled",
    "cancelled": "canceled",
}


@dataclass
class VendorResponse:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> dict[str, Any]:  # the vendor's JSON object
        import json

        try:
            value = json.loads(self.body or b"null")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def vendor_message(response: VendorResponse) -> str:
    """The vendor's own words for a refusal, short and scrubbed."""
    body = response.json()
    message = ""
    for key in ("message", "error_description", "detail", "error", "title"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            message = value.strip()
            break
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            message = value["message"].strip()
            break
    return redact(message)[:200] or "no reason given"


def request_with_deadline(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: dict[str, str],
    json: Any = None,
    data: Any = None,
    auth: tuple[str, str] | None = None,
    client: httpx.Client | None = None,
) -> VendorResponse:
    """One HTTP exchange bounded by `timeout` in total, not per read: a server dribbling bytes cannot
    hold a worker. Network trouble raises httpx.TransportError / TimeoutError. `client` (from `vendor_client`)
    reuses its kept-open connections; without one, the exchange gets a connection of its own."""
    started = time.monotonic()
    with contextlib.nullcontext(client) if client is not None else vendor_client(timeout) as client:
        with client.stream(method, url, headers=headers, json=json, data=data, auth=auth) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    break
                chunks.append(chunk)
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"no complete answer within {timeout:g} s")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no complete answer within {timeout:g} s")
            return VendorResponse(status=response.status_code, headers=response.headers, body=b"".join(chunks))


def vendor_client(timeout: float) -> httpx.Client:
    """An HTTP client for vendor calls; its connections stay open until it is closed."""
    # trust_env=False: no proxy or .netrc credentials picked up from the environment (as for webhooks).
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False)


@register_adapter("http")
class HttpSupplier:
    def __init__(self, supplier: Any) -> None:
        self.supplier = supplier
        self.config: dict[str, Any] = supplier.config or {}  # the Supplier row's JSON configuration
        self._client: httpx.Client | None = None  # kept open for the length of an issue_many

    # -- plumbing ------------------------------------------------------------------------------------
    def _base_url(self) -> str:
        base_url = (self.config.get("base_url") or "").rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            # Misconfiguration an operator can fix while the reward waits: retryable, not a failed reward.
            raise SupplierUnavailable(f"{self.supplier.code}: config base_url is missing or not an http(s) URL")
        return base_url

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        env_name = self.config.get("api_key_env") or ""
        key = os.environ.get(env_name, "") if env_name else ""
        if not key:
            raise SupplierUnavailable(
                f"{self.supplier.code}: the credential is missing (set the environment variable named in "
                "config api_key_env)"
            )
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _timeout(self) -> float:
        try:
            return max(0.1, float(self.config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)))
        except (TypeError, ValueError):
            return DEFAULT_TIMEOUT_SECONDS

    def _send(
        self,
        method: str,
        path: str,
        *,
        reference: str,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> VendorResponse:
        url = f"{self._base_url()}{path}"
        headers = self._headers(idempotency_key)
        started = time.monotonic()
        try:
            response = request_with_deadline(
                method, url, timeout=self._timeout(), headers=headers, json=body, client=self._client
            )
        except (httpx.TimeoutException, TimeoutError) as exc:
            self._log(method, path, reference, None, started, error="timeout")
            raise SupplierUnavailable(f"{self.supplier.code}: timed out after {self._timeout():g} s") from exc
        except httpx.HTTPError as exc:
            self._log(method, path, reference, None, started, error=type(exc).__name__)
            raise SupplierUnavailable(f"{self.supplier.code}: connection failed ({type(exc).__name__})") from exc
        self._log(method, path, reference, response.status, started)
        return response

    def _log(self, method: str, path: str, reference: str, status: int | None, started: float, error: str = "") -> None:
        logger.info(
            "supplier request",
            extra={
                "event": "supplier.request",
                "supplier": self.supplier.code,
                "method": method,
                "path": path.replace(quote(reference, safe=""), "{reference}"),
                "reward_id": reference,
                "status": status,
                "error": error,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )

    def _raise_for(self, response: VendorResponse, action: str) -> None:
        status = response.status
        if status in RETRYABLE_STATUSES or status >= 500:
            raise SupplierUnavailable(
                f"{self.supplier.code}: {action} answered {status}",
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status >= 400:
            raise SupplierRejected(f"{self.supplier.code}: {action} refused ({status}): {vendor_message(response)}")
        raise SupplierUnavailable(f"{self.supplier.code}: {action} answered an unexpected {status}")

    def _issued_from(self, response: VendorResponse, reference: str) -> IssuedCode:
        body = response.json()
        code = body.get("code")
        if not isinstance(code, str) or not code.strip():
            # Accepted but not issued yet (or a garbled answer): the idempotent replay will fetch it later.
            raise SupplierUnavailable(f"{self.supplier.code}: order {reference} has no code yet")
        expires_at = parse_datetime(body["expires_at"]) if isinstance(body.get("expires_at"), str) else None
        pin = body.get("pin")
        return IssuedCode(
            code=code.strip(),
            pin=str(pin).strip() if pin not in (None, "") else "",
            reference=str(body.get("id") or ""),
            expires_at=expires_at,
        )

    def _order_path(self, reference: str) -> str:
        return f"/orders/{quote(reference, safe='')}"

    # -- the adapter interface ----------------------------------------------------------------------
    def issue(self, *, product: Any, amount: Decimal, currency: str, reference: str) -> IssuedCode:
        if sandbox_twin_active():
            from .sandbox import SandboxSupplier

            return SandboxSupplier(self.supplier).issue(
                product=product, amount=amount, currency=currency, reference=reference
            )
        sku = (self.config.get("sku_map") or {}).get(str(product.pk))
        if not sku:
            raise SupplierRejected(f"{self.supplier.code}: no vendor SKU for this product (config sku_map)")
        body = {"reference": reference, "sku": sku, "amount": str(amount), "currency": currency}
        response = self._send("POST", "/orders", reference=reference, body=body, idempotency_key=reference)
        if response.status in (200, 201):
            return self._issued_from(response, reference)
        if response.status == 409:
            other = response.json().get("reference")
            if other not in (None, "", reference):
                raise SupplierRejected(f"{self.supplier.code}: order refused (409): {vendor_message(response)}")
            return self._fetch(reference)
        self._raise_for(response, "order")
        raise AssertionError("unreachable")  # pragma: no cover

    def issue_many(self, *, product: Any, requests: list[IssueRequest]) -> IssueResults:
        """The generic vendor API has no batch order: one POST per reference, over one kept-open connection
        (no TCP/TLS handshake per code)."""
        if sandbox_twin_active():
            from .sandbox import SandboxSupplier

            return SandboxSupplier(self.supplier).issue_many(product=product, requests=requests)
        with vendor_client(self._timeout()) as client:
            self._client = client
            try:
                return issue_each(self, product=product, requests=requests)
            finally:
                self._client = None

    def _fetch(self, reference: str) -> IssuedCode:
        response = self._send("GET", self._order_path(reference), reference=reference)
        if response.status == 200:
            return self._issued_from(response, reference)
        if response.status == 404:
            # 409 said the order exists; not visible yet means in flight at the vendor.
            raise SupplierUnavailable(f"{self.supplier.code}: order {reference} is not visible yet")
        self._raise_for(response, "order lookup")
        raise AssertionError("unreachable")  # pragma: no cover

    def status(self, *, reference: str) -> str:
        if sandbox_twin_active():
            return "issued"
        response = self._send("GET", self._order_path(reference), reference=reference)
        if response.status == 404:
            return "unknown"
        if response.status != 200:
            self._raise_for(response, "order lookup")
        body = response.json()
        state = str(body.get("status") or ("issued" if body.get("code") else "")).lower()
        return STATUS_MAP.get(state, "unknown")

    def void(self, *, reference: str, disclosed: bool) -> None:
        """POST {void_path}: only a vendor that says it voids (config `void_path`) can void; 2xx confirms."""
        if sandbox_twin_active():
            return None
        path = self.config.get("void_path")
        if not path:
            raise SupplierRejected(f"{self.supplier.code}: this vendor has no void endpoint configured (void_path)")
        response = self._send(
            "POST",
            path.replace("{reference}", quote(reference, safe="")),
            reference=reference,
            idempotency_key=f"{reference}:void",
        )
        if response.status in (200, 202, 204):
            return None
        self._raise_for(response, "void")
        return None
