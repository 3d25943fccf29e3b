"""Work for test and bench tasks to measure: a CPU-bound loop of a known length."""

from __future__ import annotations

import time


def spin(seconds: float) -> int:
    """Keep one core busy for ``seconds`` (s) of wall time; returns a checksum so the loop is not idle."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(2_000)) % 7
    return n
