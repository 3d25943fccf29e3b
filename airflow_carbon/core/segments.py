"""Grams from the hours a try really ran: its energy cut at the grid-intensity intervals it spans.

A live source gives intensity per interval (an hour, 30 min, 5 min), and a meter knows the try's
cumulative energy at a few instants (its start, its checkpoints, its end). :func:`energy_segments` cuts
the try's window at every interval boundary and every known instant, so that each segment lies in one
interval and between two known energies, and gives each segment its energy and its interval's g/kWh.

Between two known instants the power is taken as constant, so the energy of a segment that ends inside
a checkpoint span is that span's energy shared by time: such a segment says ``energy_estimated``. A
span no interval covers gets the ``fallback`` intensity (the bundled figure of the location), and says
so in its ``source``. No Airflow, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypedDict

from airflow_carbon.core.units import j_to_kwh

__all__ = ["IntensityInterval", "Segment", "energy_segments", "segment_emissions_g", "weighted_g_per_kwh"]


@dataclass(frozen=True)
class IntensityInterval:
    """One interval of a source's series: [``start_s``, ``end_s``) in Unix seconds (UTC) at ``g_per_kwh``
    gCO2e/kWh; ``estimated`` where the source says the figure is a forecast or an estimate."""

    start_s: float
    end_s: float
    g_per_kwh: float
    source: str
    estimated: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s) and self.end_s > self.start_s):
            raise ValueError(f"an intensity interval needs start_s < end_s, got [{self.start_s}, {self.end_s})")
        if not (math.isfinite(self.g_per_kwh) and self.g_per_kwh >= 0):
            raise ValueError(f"g_per_kwh={self.g_per_kwh!r} is invalid; expected a number >= 0 gCO2e/kWh")


class Segment(TypedDict):
    """A piece of a try's window inside one intensity interval (times in Unix seconds, UTC)."""

    start: float
    end: float
    energy_kwh: float
    g_per_kwh: float
    source: str
    estimated: bool
    """The intensity is a forecast or an estimate (the source's flag), or the fallback figure."""
    energy_estimated: bool
    """The energy is a checkpoint span's, shared by time (constant power assumed within the span)."""


def energy_segments(
    energy_points: Sequence[tuple[float, float]],
    intervals: Sequence[IntensityInterval],
    *,
    fallback_g_per_kwh: float,
    fallback_source: str,
) -> list[Segment]:
    """The try's segments, in time order.

    ``energy_points``: (Unix seconds, cumulative energy in J) at the instants the meter knows, the try's
    start first and its end last, times increasing and energy non-decreasing. ``intervals``: the source's
    series, non-overlapping (in any order). A span that no interval covers is measured at
    ``fallback_g_per_kwh`` gCO2e/kWh with ``fallback_source`` as its source (``estimated``).
    """
    points = _checked_points(energy_points)
    t0, t1 = points[0][0], points[-1][0]
    series = sorted((i for i in intervals if i.end_s > t0 and i.start_s < t1), key=lambda i: i.start_s)
    for a, b in pairwise(series):
        if b.start_s < a.end_s:
            raise ValueError(f"intensity intervals overlap: [{a.start_s}, {a.end_s}) and [{b.start_s}, {b.end_s})")
    known = {t for t, _ in points}
    cuts = sorted(known | {x for i in series for x in (i.start_s, i.end_s) if t0 < x < t1})
    segments: list[Segment] = []
    owners: list[IntensityInterval | None] = []  # the interval of each segment (None: the fallback)
    for start, end in pairwise(cuts):
        interval = next((i for i in series if i.start_s <= start and end <= i.end_s), None)
        if interval is None:
            g, source, estimated = fallback_g_per_kwh, fallback_source, True
        else:
            g, source, estimated = interval.g_per_kwh, interval.source, interval.estimated
        energy_j = _energy_between(points, start, end)
        segment = Segment(start=start, end=end, energy_kwh=j_to_kwh(energy_j), g_per_kwh=g, source=source,
                          estimated=estimated, energy_estimated=not (start in known and end in known))
        if segments and owners[-1] is interval and segments[-1]["end"] == start:  # a checkpoint inside one interval
            last = segments[-1]
            last["end"], last["energy_kwh"] = end, last["energy_kwh"] + segment["energy_kwh"]
            last["energy_estimated"] = last["energy_estimated"] or segment["energy_estimated"]
            continue
        segments.append(segment)
        owners.append(interval)
    return segments


def segment_emissions_g(segments: Sequence[Segment], pue: float) -> float:
    """Grams of CO2e: each segment's energy (kWh) x its g/kWh, times ``pue``."""
    return sum(s["energy_kwh"] * s["g_per_kwh"] for s in segments) * pue


def weighted_g_per_kwh(segments: Sequence[Segment]) -> float | None:
    """The energy-weighted mean intensity (gCO2e/kWh); the time-weighted one where no energy was drawn;
    None for no segments."""
    energy = sum(s["energy_kwh"] for s in segments)
    if energy > 0:
        return sum(s["energy_kwh"] * s["g_per_kwh"] for s in segments) / energy
    seconds = sum(s["end"] - s["start"] for s in segments)
    if seconds > 0:
        return sum((s["end"] - s["start"]) * s["g_per_kwh"] for s in segments) / seconds
    return segments[0]["g_per_kwh"] if segments else None


# -- internals -------------------------------------------------------------------------------------
def _checked_points(energy_points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    points = [(float(t), float(e)) for t, e in energy_points]
    if len(points) < 2:
        raise ValueError(f"energy_points needs the try's start and end, got {len(points)} point(s)")
    for (ta, ea), (tb, eb) in pairwise(points):
        if not (math.isfinite(ta) and math.isfinite(tb) and tb > ta):
            raise ValueError(f"energy_points times must increase, got {ta} then {tb}")
        if not (math.isfinite(ea) and math.isfinite(eb) and eb >= ea):
            raise ValueError(f"energy_points energy must not decrease, got {ea} J then {eb} J")
    return points


def _energy_at(points: list[tuple[float, float]], t: float) -> float:
    """Cumulative energy (J) at ``t``: exact at a known instant, linear (constant power) between two."""
    for (ta, ea), (tb, eb) in pairwise(points):
        if ta <= t <= tb:
            return ea + (eb - ea) * (t - ta) / (tb - ta)
    raise ValueError(f"{t} is outside the try's window [{points[0][0]}, {points[-1][0]}]")  # pragma: no cover


def _energy_between(points: list[tuple[float, float]], start: float, end: float) -> float:
    return _energy_at(points, end) - _energy_at(points, start)

