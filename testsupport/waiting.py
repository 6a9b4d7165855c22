"""Waiting for something another thread or process does: poll a condition, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.05) -> T:
    """Poll predicate() until it is truthy or `timeout` seconds pass; returns its last value (falsy: time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, *, message: str = "") -> T:
    """Poll until predicate() is truthy and return its value; fail the test (saying `message`) when time runs out."""
    value = wait_until(predicate, timeout=timeout, interval=interval)
    if not value:
        pytest.fail(f"condition not met within {timeout:g}s{': ' + message if message else ''} (last: {value!r})")
    return value
