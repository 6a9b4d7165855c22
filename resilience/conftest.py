"""Fixtures of the resilience suite (`make test-resilience`); the root conftest's fixtures apply too.

`stack` is a private production-like installation (resilience/stack.py): its own PostgreSQL and Redis,
gunicorn with production settings, a Celery worker and Celery beat, mail to the root conftest's SMTP sink.
The fault tests stop and restart its servers; nothing they do reaches the shared embedded servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .load import WebhookReceiver
from .stack import Stack


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def stack(smtp_server) -> Iterator[Stack]:
    private = Stack(smtp_port=smtp_server.port)
    try:
        private.start_all()
        yield private
    finally:
        private.close()


@pytest.fixture
def healthy_stack(stack: Stack) -> Stack:
    """The session's stack, with every server and process up (a previous test may have stopped one)."""
    stack.assert_alive()
    if stack.redis.process is None:
        stack.redis.start()
    return stack
