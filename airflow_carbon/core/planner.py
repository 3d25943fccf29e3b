"""When to start: the start in ``[now, now + start_within]`` whose window of ``expected_duration`` has the
lowest mean forecast intensity (gCO2e/kWh), and whether waiting for it is worth it.

Pure and Airflow-free: a forecast is a list of :class:`~airflow_carbon.core.segments.IntensityInterval`
with its own timestamps (hourly, 5-minutely, irregular, with gaps). The mean intensity of a window is the
time integral of the step function over it, divided by its length; it is defined only where the
forecast covers the whole window. Between two forecast boundaries the mean is linear in the start, so
its minimum over an interval of starts lies where the window's start or end meets a boundary, or at an
end of the range of starts: those are the only candidates. Ties go to the earliest start (the least
waiting).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from airflow_carbon.core.segments import IntensityInterval

__all__ = ["DEFAULT_MIN_SAVING_PCT", "Forecast", "Plan", "plan_start"]

DEFAULT_MIN_SAVING_PCT = 5.0
"""Waiting is chosen only when it saves at least this share (%) of the forecast intensity of starting now."""


class Forecast:
    """A forecast as a step function of time, for O(log n) window means (intervals may leave gaps)."""

    def __init__(self, intervals: Sequence[IntensityInterval]) -> None:
        series = sorted(intervals, key=lambda i: i.start_s)
        for a, b in pairwise(series):
            if b.start_s < a.end_s:
                raise ValueError(f"forecast intervals overlap: [{a.start_s}, {a.end_s}) and [{b.start_s}, {b.end_s})")
        self.intervals = series
        self._starts = [i.start_s for i in series]
        self._cum = [0.0]  # the integral (g/kWh x s) up to each interval's start, gaps counting 0
        for i in series:
            self._cum.append(self._cum[-1] + i.g_per_kwh * (i.end_s - i.start_s))
        # covered spans, merged: a window is evaluable only inside one of them
        self._spans: list[tuple[float, float]] = []
        for i in series:
            if self._spans and self._spans[-1][1] == i.start_s:
                self._spans[-1] = (self._spans[-1][0], i.end_s)
            else:
                self._spans.append((i.start_s, i.end_s))
        self._span_starts = [a for a, _ in self._spans]

    @property
    def end_s(self) -> float:
        """The end of the forecast's horizon (Unix s); -inf for an empty forecast."""
        return self.intervals[-1].end_s if self.intervals else -math.inf

    def boundaries(self, from_s: float = -math.inf, to_s: float = math.inf) -> list[float]:
        """The interval starts and ends (Unix s) in [``from_s``, ``to_s``], sorted."""
        lo = max(0, bisect.bisect_left(self._starts, from_s) - 1)
        hi = bisect.bisect_right(self._starts, to_s)
        return sorted({t for i in self.intervals[lo:hi] for t in (i.start_s, i.end_s) if from_s <= t <= to_s})

    def covered_until(self, t_s: float) -> float | None:
        """The end of the covered span holding ``t_s`` (Unix s), or None where the forecast does not cover it."""
        k = bisect.bisect_right(self._span_starts, t_s) - 1
        if k >= 0 and self._spans[k][0] <= t_s < self._spans[k][1]:
            return self._spans[k][1]
        return None

    def _integral(self, t_s: float) -> float:
        k = bisect.bisect_right(self._starts, t_s) - 1
        if k < 0:
            return 0.0
        i = self.intervals[k]
        return self._cum[k] + i.g_per_kwh * (min(t_s, i.end_s) - i.start_s)

    def mean(self, start_s: float, duration_s: float) -> float | None:
        """Mean intensity (gCO2e/kWh) over [start_s, start_s + duration_s]; None where not fully covered."""
        until = self.covered_until(start_s)
        if until is None or until < start_s + duration_s or duration_s <= 0:
            return None
        return (self._integral(start_s + duration_s) - self._integral(start_s)) / duration_s


@dataclass(frozen=True)
class Plan:
    """The decision: start at ``planned_start_s`` (Unix s), ``wait_s`` seconds after ``now_s``.

    ``g_per_kwh_now`` / ``g_per_kwh_planned``: the forecast mean intensity over the expected duration when
    starting now / at the planned start (None where the forecast could not say). ``reason`` says why in
    words; ``clipped_to_s`` is the latest start the forecast's horizon allowed where it cut ``start_within``."""

    now_s: float
    planned_start_s: float
    g_per_kwh_now: float | None
    g_per_kwh_planned: float | None
    reason: str
    clipped_to_s: float | None = None

    @property
    def wait_s(self) -> float:
        return self.planned_start_s - self.now_s

    @property
    def saving_pct(self) -> float | None:
        """The forecast saving (%) of the planned start against starting now."""
        now, planned = self.g_per_kwh_now, self.g_per_kwh_planned
        if now is None or planned is None or now <= 0:
            return None
        return 100.0 * (now - planned) / now


def plan_start(forecast: Sequence[IntensityInterval] | Forecast, *, now_s: float, start_within_s: float,
               duration_s: float, min_saving_pct: float = DEFAULT_MIN_SAVING_PCT) -> Plan:
    """The start in [``now_s``, ``now_s + start_within_s``] (Unix s) minimising the mean forecast intensity
    over ``duration_s`` seconds; ``now_s`` itself unless waiting saves at least ``min_saving_pct`` (%).
    Fails open: a forecast that does not cover starting now means starting now, with the reason."""
    if start_within_s < 0 or duration_s <= 0 or not (math.isfinite(start_within_s) and math.isfinite(duration_s)):
        raise ValueError(f"start_within_s={start_within_s!r} must be >= 0 and duration_s={duration_s!r} > 0 (s)")
    f = forecast if isinstance(forecast, Forecast) else Forecast(forecast)
    g_now = f.mean(now_s, duration_s)
    if g_now is None:
        covered = f.covered_until(now_s)
        why = ("the forecast does not cover now" if covered is None else
               f"the forecast covers {(covered - now_s) / 3600:.2g} h from now, less than the expected duration "
               f"({duration_s / 3600:.2g} h)")
        return Plan(now_s, now_s, None, None, f"started at once: {why}")
    span_end = f.covered_until(now_s)
    assert span_end is not None
    latest = now_s + start_within_s
    clipped = None
    if span_end - duration_s < latest:  # the horizon cuts the range of starts
        latest = clipped = span_end - duration_s
    candidates = {now_s, latest}
    for b in f.boundaries(now_s, latest + duration_s):
        for s in (b, b - duration_s):
            if now_s < s < latest:
                candidates.add(s)
    best_s, best_g = now_s, g_now
    for s in sorted(candidates):
        g = f.mean(s, duration_s)
        if g is not None and g < best_g - 1e-9 * max(1.0, abs(best_g)):
            best_s, best_g = s, g
    clip_note = ""
    if clipped is not None:
        clip_note = f"; start_within clipped to the forecast's horizon (latest start {clipped - now_s:.0f} s from now)"
    if best_s == now_s:
        return Plan(now_s, now_s, g_now, g_now, f"started at once: no later start in the window is greener{clip_note}", clipped)
    saving = 100.0 * (g_now - best_g) / g_now if g_now > 0 else 0.0
    if saving < min_saving_pct:
        return Plan(now_s, now_s, g_now, g_now,
                    f"started at once: the greenest start saves {saving:.1f} %, "
                    f"less than min_saving_pct {min_saving_pct:g} %{clip_note}",
                    clipped)
    return Plan(now_s, best_s, g_now, best_g,
                f"waited {best_s - now_s:.0f} s for a forecast {best_g:.0f} gCO2e/kWh instead of {g_now:.0f} "
                f"({saving:.1f} % less){clip_note}",
                clipped)
