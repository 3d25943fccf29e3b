"""Airflow layer: the trigger a tracked task defers to while it waits for its planned greener start.

It only waits (no request, no secret): the plan was made on the worker from the forecast, and travels in the
trigger's kwargs and back in its event (``shift``), so that the resumed try records what the wait was for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

MAX_SLEEP_S = 60.0
"""The longest single sleep (s): the trigger wakes at least this often to check the time."""


class CarbonAwareStartTrigger(BaseTrigger):
    """Fires at ``start_at_s`` (Unix s) with ``{"shift": shift, "fired_at_s": ...}``: the plan, JSON-friendly."""

    def __init__(self, start_at_s: float, shift: dict[str, Any]) -> None:
        super().__init__()
        self.start_at_s = float(start_at_s)
        self.shift = shift

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"start_at_s": self.start_at_s, "shift": self.shift}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while (left := self.start_at_s - time.time()) > 0:
            await asyncio.sleep(min(left, MAX_SLEEP_S))
        yield TriggerEvent({"shift": self.shift, "fired_at_s": time.time()})
