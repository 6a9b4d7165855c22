"""No secret in any log line: a whole flow runs with every logger at DEBUG and the output is searched.

The flow: a key and an access token, an API-delivered order fulfilled and revealed, a link order opened and
revealed on the claim page, a webhook endpoint created and its secret rotated, a delivery attempted (signed
with the secret). Every record is checked twice: as the app writes it (the configured console handler, with
its redaction filter) and as it was emitted (caplog, before any filter), so no secret is even handed to
the logging system.
"""

from __future__ import annotations

import io
import logging
import re

from django.db import transaction
from django.test import Client
from django_tenants.utils import tenant_context

from core import crypto
from core.logging import RedactSecretsFilter


class RawCapture(logging.Handler):
    """Every record as emitted: message, extra attributes and traceback, before any filter runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # String attributes only: numbers (timestamps, durations) would let a PIN match by chance.
        strings = {key: value for key, value in vars(record).items() if not isinstance(value, (int, float))}
        text = f"{record.getMessage()} {strings!r}"
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


def test_a_full_flow_logs_no_key_token_secret_code_pin_or_claim_token(tenant_a, make_api_client, shop, caplog):
    from fulfillment.services import reward_fulfil
    from funds.services import funds_deposit
    from orders.models import Reward
    from webhooks.drain import webhook_delivery_attempt
    from webhooks.events import event_emit
    from webhooks.models import WebhookDelivery

    root = logging.getLogger()
    console = next(h for h in root.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters))
    stream = io.StringIO()
    previous_stream = console.setStream(stream)
    raw = RawCapture()
    root.handlers.insert(0, raw)  # before the console handler's redaction filter touches the record
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    try:
        api = make_api_client(tenant_a)
        secrets.append(api.raw_key)
        with tenant_context(tenant_a):
            funds_deposit(currency="USD", amount="500.00")
        token = Client().post(
            "/api/v1/tokens",
            {"grant_type": "client_credentials", "client_id": api.key.key_id, "client_secret": api.raw_key},
        )
        assert token.status_code == 200
        secrets.append(token.json()["access_token"])
        bearer = Client(HTTP_AUTHORIZATION=f"Bearer {token.json()['access_token']}")
        assert bearer.get("/api/v1/balances").status_code == 200

        body = {
            "type": "digital",
            "rewards": [
                {
                    "product_id": str(shop.coffee_usd.id),
                    "amount": "25.00",
                    "delivery_method": "api",
                    "recipient": {"name": "Ada", "email": "ada@example.com"},
                },
                {
                    "product_id": str(shop.coffee_usd.id),
                    "amount": "10.00",
                    "delivery_method": "email",
                    "recipient": {"name": "Bob", "email": "bob@example.com"},
                },
            ],
        }
        order = api.post("/api/v1/orders", body, HTTP_IDEMPOTENCY_KEY="log-flow-1").json()
        link = api.post(
            "/api/v1/orders",
            {
                "type": "link",
                "rewards": [
                    {
                        "product_id": str(shop.coffee_usd.id),
                        "amount": "50.00",
                        "delivery_method": "link",
                        "recipient": {"name": "Cy"},
                    }
                ],
            },
        ).json()
        claim_token = link["rewards"][0]["claim_url"].rsplit("/r/", 1)[1]
        secrets.append(claim_token)
        with tenant_context(tenant_a):
            for reward in order["rewards"] + link["rewards"]:
                reward_fulfil(reward_id=reward["id"])
            for reward in Reward.objects.filter(pk__in=[r["id"] for r in order["rewards"] + link["rewards"]]):
                secrets.append(crypto.decrypt(reward.code_encrypted))
                if reward.pin_encrypted:
                    secrets.append(crypto.decrypt(reward.pin_encrypted))
        revealed = api.post(f"/api/v1/rewards/{order['rewards'][0]['id']}/reveal")
        assert revealed.status_code == 200 and revealed.json()["code"] in secrets

        recipient = Client()
        assert recipient.get(f"/r/{claim_token}").status_code == 200
        page = recipient.post(f"/r/{claim_token}/reveal")
        assert page.status_code == 200 and any(code.encode() in page.content for code in secrets[3:])

        created = api.post("/api/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        assert created.status_code == 201
        endpoint = created.json()
        secrets.append(endpoint["secret"])
        rotated = api.post(f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {})
        secrets.append(rotated.json()["secret"])
        with tenant_context(tenant_a):
            with transaction.atomic():
                event_emit(type="balance.credited", data={"currency": "USD", "amount": "1.00"})
            for delivery in WebhookDelivery.objects.all():
                webhook_delivery_attempt(delivery_id=delivery.id)
    finally:
        console.setStream(previous_stream)
        root.removeHandler(raw)

    secrets = [secret for secret in secrets if secret]
    assert len(secrets) >= 8, secrets
    written = stream.getvalue()
    emitted = "\n".join(raw.lines)
    assert len(caplog.records) >= 20, "the flow should have logged"
    for secret in secrets:
        if len(secret) < 8:  # a short PIN (inventory): look for it as a token, not inside longer digit runs
            pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")
            assert not pattern.search(written), "a PIN reached the log output"
            assert not pattern.search(emitted), "a PIN was handed to the logging system"
            continue
        assert secret not in written, f"a secret ({secret[:6]}…) reached the log output"
        assert secret not in emitted, f"a secret ({secret[:6]}…) was handed to the logging system"
