"""Standard Webhooks signing: endpoint secrets (`whsec_…`) and the signed headers of each request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

USER_AGENT = "rewards-portal-webhooks/1.0"


def secret_generate() -> str:
    """A new signing secret, as receivers' Standard Webhooks libraries expect it: `whsec_` + base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_keys(secrets_: Iterable[str]) -> tuple[bytes, ...]:
    """The HMAC keys of an endpoint's signing secrets (decrypted), in the order given."""
    return tuple(base64.b64decode(secret.removeprefix("whsec_")) for secret in secrets_)


def request_headers(*, webhook_id: str, body: bytes, keys: tuple[bytes, ...]) -> dict[str, str]:
    """Standard Webhooks v1 headers (several signatures during a rotation); the timestamp is the send time."""
    timestamp = str(int(time.time()))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signatures,
    }
