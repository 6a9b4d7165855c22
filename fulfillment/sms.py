"""SMS through a provider interface: a console backend for dev, an HTTP provider for production."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str) -> None: ...


class ConsoleSmsBackend:
    """Dev only: says that a message went out, without its body (it may hold a code)."""

    def send(self, *, to: str, body: str) -> None:
        logger.info("sms sent (console backend)", extra={"event": "sms.sent", "to_last4": to[-4:]})


class LocmemSmsBackend:
    """Tests: keeps messages in memory."""

    outbox: list[dict[str, str]] = []

    def send(self, *, to: str, body: str) -> None:
        self.outbox.append({"to": to, "body": body})


class SmsUnavailable(OSError):
    """The provider could not take the message now (timeout, 408/429/5xx): the delivery task retries it.

    An OSError because that is what the delivery task retries (like SMTP trouble)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HttpSmsBackend:
    """A Twilio-style REST provider: form-encoded POST To/From/Body with HTTP basic auth (account, token).

    408/429/5xx, timeouts and connection errors raise SmsUnavailable (retried, Retry-After kept on the
    error); any other 4xx means the provider refused this message (a bad number, a blocked recipient)
    and raises DeliveryFailed, which marks the reward delivery_failed. The body (it holds the code) is
    never logged, nor echoed in an error.
    """

    def __init__(self) -> None:
        missing = [
            name for name in ("SMS_HTTP_URL", "SMS_HTTP_ACCOUNT", "SMS_HTTP_TOKEN") if not getattr(settings, name)
        ]
        if missing:
            raise ImproperlyConfigured(f"HttpSmsBackend needs {', '.join(missing)}")
        self.url = settings.SMS_HTTP_URL.replace("{account}", settings.SMS_HTTP_ACCOUNT)
        self.auth = (settings.SMS_HTTP_ACCOUNT, settings.SMS_HTTP_TOKEN)
        self.sender = settings.SMS_HTTP_FROM
        self.timeout = float(settings.SMS_HTTP_TIMEOUT_SECONDS)

    def send(self, *, to: str, body: str) -> None:
        import time

        import httpx

        from core.http import retry_after_seconds

        from .delivery import DeliveryFailed
        from .suppliers.http import request_with_deadline, vendor_message

        form = {"To": to, "Body": body}
        if self.sender:
            form["From"] = self.sender
        started = time.monotonic()
        log = {"event": "sms.request", "to_last4": to[-4:]}
        try:
            response = request_with_deadline(
                "POST",
                self.url,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
                data=form,
                auth=self.auth,
            )
        except (httpx.TimeoutException, TimeoutError) as exc:
            logger.warning("sms provider timed out", extra={**log, "error": "timeout"})
            raise SmsUnavailable(f"SMS provider: timed out after {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            logger.warning("sms provider unreachable", extra={**log, "error": type(exc).__name__})
            raise SmsUnavailable(f"SMS provider: connection failed ({type(exc).__name__})") from exc
        status = response.status
        duration_ms = round((time.monotonic() - started) * 1000)
        if 200 <= status < 300:
            sid = response.json().get("sid", "")
            logger.info("sms sent", extra={**log, "event": "sms.sent", "status": status, "sid": str(sid)[:64],
                                           "duration_ms": duration_ms})  # fmt: skip
            return
        logger.warning("sms provider refused", extra={**log, "status": status, "duration_ms": duration_ms})
        if status in (408, 425, 429) or status >= 500:
            raise SmsUnavailable(
                f"SMS provider answered {status}", retry_after=retry_after_seconds(response.headers.get("retry-after"))
            )
        raise DeliveryFailed(
            f"the SMS provider refused the message ({status}): {_without_body(vendor_message(response), body)}"
        )


def _without_body(message: str, body: str) -> str:
    """A provider may quote the message back; the message holds the code, so such a reason is dropped."""
    words = [word for word in body.split() if len(word) >= 6]
    return "reason withheld (it quoted the message)" if any(word in message for word in words) else message


@lru_cache(maxsize=1)
def get_sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.SMS_BACKEND)()
    return backend
