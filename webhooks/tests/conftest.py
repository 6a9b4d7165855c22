"""Webhook test fixtures: a real HTTP receiver on 127.0.0.1 that records requests and answers as scripted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testsupport.servers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()
