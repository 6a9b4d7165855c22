"""SMS through a provider interface: a console backend for dev, an HTTP provider for production."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Protocol

from django.conf import settings
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


@lru_cache(maxsize=1)
def get_sms_backend() -> SmsBackend:
    return import_string(settings.SMS_BACKEND)()
