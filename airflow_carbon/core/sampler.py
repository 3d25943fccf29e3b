"""A background thread that calls a function periodically, at a random instant within each interval.

Sampling at a random instant in each interval (stratified sampling) keeps the time integral of a
sampled signal unbiased even when the signal is periodic at a multiple of the interval, where a fixed
grid would alias (a 0.3 s on/off GPU load sampled every 100 ms reads 2/3 "on" forever). The interval
is ``fast_interval_s`` for the first ``hold_s`` seconds and for ``hold_s`` seconds after each fast change.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable


class Sampler:
    """Run ``tick(t_monotonic_s) -> bool`` on a daemon thread; ``True`` means "the signal is changing fast"."""

    def __init__(
        self,
        tick: Callable[[float], bool],
        interval_s: float,
        *,
        fast_interval_s: float | None = None,
        hold_s: float = 1.0,
        name: str = "airflow-carbon-sampler",
    ) -> None:
        self._tick = tick
        self.interval_s = interval_s
        self.fast_interval_s = fast_interval_s
        self.hold_s = hold_s
        # The thread waits on a lock that stop() releases: a timed acquire wakes for a tick, a release wakes it
        # at once. (An Event's wait costs a third more CPU per wake-up, which at 50 ticks a second is ~0.2 % of a core.)
        self._stop = threading.Lock()
        self._stop.acquire()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._random = random.Random()
        self.cpu_s = 0.0
        """CPU time (s) the sampling thread used, known once stopped."""
        self.ticks = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (it wakes at once; a tick in progress finishes first)."""
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(RuntimeError):  # released already, by a stop() at the same moment
                self._stop.release()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        cpu_start = time.thread_time()
        slot_start = time.monotonic()
        # Start fast: the first interval would otherwise leave a gap before a fast signal is noticed.
        fast_until = slot_start + self.hold_s if self.fast_interval_s is not None else 0.0
        try:
            while True:
                now = time.monotonic()
                interval = self.interval_s
                if self.fast_interval_s is not None and now < fast_until:
                    interval = self.fast_interval_s
                if slot_start + interval < now:  # overran (a slow tick or a pause): restart the grid
                    slot_start = now
                target = slot_start + self._random.random() * interval
                if self._stop.acquire(True, max(0.0, target - now)) or self._stopped:
                    return
                t = time.monotonic()
                self.ticks += 1
                if self._tick(t) and self.fast_interval_s is not None:
                    fast_until = t + self.hold_s
                slot_start += interval
        except BaseException as exc:  # never let the sampler kill anything; the meter reports it
            self.error = exc
        finally:
            self.cpu_s = time.thread_time() - cpu_start
