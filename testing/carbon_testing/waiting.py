"""Waiting for what a loopback server received, in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(items: Callable[[], list[T]], predicate: Callable[[T], bool], timeout: float, what: str) -> list[T]:
    """The items matching ``predicate`` once there is at least one, polled every 20 ms; AssertionError naming
    ``what`` was received after ``timeout`` (s)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [item for item in items() if predicate(item)]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert found, f"nothing matching within {timeout} s; received: {what}"
    return found
