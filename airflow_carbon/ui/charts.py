"""Server-side SVG charts: no JavaScript, no network, colours from the page's CSS (light and dark).

Every label is escaped here; the SVG is returned as text for the page to include as is. Pure: no Airflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from html import escape
from typing import NamedTuple

WIDTH, HEIGHT = 760, 230
"""The charts' size in SVG user units (px at 100 %; the SVG scales to the page's width)."""
LEFT, RIGHT, TOP, BOTTOM = 104, 10, 12, 42
"""Plot margins (px): room for the value axis' labels on the left and the bars' labels below."""


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(count + 1) if i * step <= top + step * 0.999]


def bar_chart(
    bars: Sequence[tuple[str, float]],
    fmt: Callable[[float], str],
    *,
    title: str,
    links: Sequence[str | None] | None = None,
    tooltips: Sequence[str] | None = None,
) -> str:
    """Vertical bars (label, value); ``fmt`` formats values with their unit (axis and tooltips)."""
    if not bars:
        return ""
    top = max(v for _, v in bars) or 1.0
    ticks = _ticks(top)
    y_max = max(ticks[-1], top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)
    bar_w = min(max(slot * 0.8, 1.0), 48.0)
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for t in ticks:
        y = TOP + plot_h - t / y_max * plot_h
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    every = max(1, math.ceil(len(bars) / 12))
    for i, (label, value) in enumerate(bars):
        h = value / y_max * plot_h
        x = LEFT + i * slot + (slot - bar_w) / 2
        tip = tooltips[i] if tooltips else f"{label}: {fmt(value)}"
        rect = (f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}">'
                f'<title>{escape(tip)}</title></rect>')
        link = links[i] if links else None
        out.append(f'<a href="{escape(link)}" target="_top">{rect}</a>' if link else rect)
        if i % every == 0:
            out.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                       f'{escape(label)}</text>')
    out.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/></svg>')
    return "".join(out)


def stacked_bars(
    rows: Sequence[tuple[str, dict[str, float]]],
    series: Sequence[tuple[str, str]],
    fmt: Callable[[float], str],
    *,
    title: str,
) -> str:
    """Horizontal bars, one per row (label, {series key: value}), stacked in ``series`` order
    ((key, legend name)); the legend and every segment's tooltip carry the value and unit."""
    if not rows:
        return ""
    row_h, label_w, gap = 22, 170, 6  # px
    legend_h = 26  # px
    height = legend_h + len(rows) * (row_h + gap) + 24
    plot_w = WIDTH - label_w - RIGHT - 90
    top = max(sum(values.get(k, 0.0) for k, _ in series) for _, values in rows) or 1.0
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    x = label_w
    for key, name in series:
        out.append(f'<rect class="seg seg-{escape(key)}" x="{x}" y="4" width="12" height="12"/>'
                   f'<text class="axis" x="{x + 16}" y="14">{escape(name)}</text>')
        x += 16 + 8 * len(name) + 18
    for i, (label, values) in enumerate(rows):
        y = legend_h + i * (row_h + gap)
        out.append(f'<text class="axis" x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        x = float(label_w)
        for key, name in series:
            w = values.get(key, 0.0) / top * plot_w
            if w > 0:
                out.append(f'<rect class="seg seg-{escape(key)}" x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{row_h}">'
                           f'<title>{escape(f"{label} {name}: {fmt(values.get(key, 0.0))}")}</title></rect>')
                x += w
        total = sum(values.get(k, 0.0) for k, _ in series)
        out.append(f'<text class="axis" x="{x + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">{escape(fmt(total))}</text>')
    out.append("</svg>")
    return "".join(out)


TRACK_LABELS = 8
"""A step chart names each track at its start up to this many tracks (beyond, the tooltips do)."""


class Step(NamedTuple):
    """One level of a step chart: ``value`` from ``start_s`` to ``end_s`` (Unix seconds, UTC); ``track`` groups
    the steps drawn as one line (risers join a track's adjacent steps); ``dashed`` marks an estimate."""

    start_s: float
    end_s: float
    value: float
    track: str
    dashed: bool
    tooltip: str


_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)
"""Spacings of the time axis' ticks (s): the smallest that cuts the span in at most 6."""


def _time_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    """Ticks on round UTC times between ``t0`` and ``t1`` (Unix s), labelled 'HH:MM' (':SS' below a minute's
    spacing, the date 'MM-DD' where a day starts or the spacing is days)."""
    span = t1 - t0
    step = next((s for s in _TIME_STEPS_S if span / s <= 6), math.ceil(span / 6 / 604800) * 604800)
    times = [t for t in (math.ceil(t0 / step) * step + i * step for i in range(8)) if t <= t1]
    if len(times) < 2:
        times = [t0, t1]
    out, day = [], None
    for t in times:
        at = datetime.fromtimestamp(t, timezone.utc)
        if step >= 86400:
            label = at.strftime("%m-%d")
        else:
            label = at.strftime("%H:%M:%S" if step < 60 or at.second else "%H:%M")
            if day is not None and at.date() != day:
                label = at.strftime("%m-%d ") + label
        day = at.date()
        out.append((t, label))
    return out


def step_chart(steps: Sequence[Step], fmt: Callable[[float], str], *, title: str, dashed_label: str) -> str:
    """Levels over time (x: UTC time, y: value from 0): a horizontal line per step, risers joining a track's
    adjacent steps, each track named at its start (up to :data:`TRACK_LABELS` tracks); dashed steps are drawn
    dashed, and the legend names them ``dashed_label``. ``fmt`` formats values with their unit (axis).
    Empty when there is no step."""
    if not steps:
        return ""
    t0, t1 = min(s.start_s for s in steps), max(s.end_s for s in steps)
    span = (t1 - t0) or 1.0
    top = max(s.value for s in steps) or 1.0
    ticks = _ticks(top)
    y_max = max(ticks[-1], top)
    legend_h = 20  # px
    plot_top = TOP + legend_h
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - plot_top - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    def y(v: float) -> float:
        return plot_top + plot_h - v / y_max * plot_h

    out = [f'<svg class="chart steps" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<line class="legend step" x1="{LEFT}" x2="{LEFT + 24}" y1="{TOP + 6}" y2="{TOP + 6}"/>'
           f'<text class="axis" x="{LEFT + 30}" y="{TOP + 10}">{escape("from the source")}</text>'
           f'<line class="legend step estimated" x1="{LEFT + 150}" x2="{LEFT + 174}" y1="{TOP + 6}" y2="{TOP + 6}"/>'
           f'<text class="axis" x="{LEFT + 180}" y="{TOP + 10}">{escape(dashed_label)}</text>']
    for t in ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                   f'<text class="axis" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    for t, label in _time_ticks(t0, t1):
        out.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{plot_top + plot_h}" y2="{plot_top + plot_h + 4}"/>'
                   f'<text class="axis" x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">UTC</text>')
    last: dict[str, Step] = {}
    for s in sorted(steps, key=lambda s: (s.track, s.start_s)):
        dash = " estimated" if s.dashed else ""
        before = last.get(s.track)
        if before is not None and abs(before.end_s - s.start_s) < 1e-3 and before.value != s.value:
            riser = " estimated" if before.dashed or s.dashed else ""
            out.append(f'<line class="riser{riser}" x1="{x(s.start_s):.1f}" x2="{x(s.start_s):.1f}" '
                       f'y1="{y(before.value):.1f}" y2="{y(s.value):.1f}"/>')
        out.append(f'<line class="step{dash}" x1="{x(s.start_s):.1f}" x2="{max(x(s.end_s), x(s.start_s) + 1):.1f}" '
                   f'y1="{y(s.value):.1f}" y2="{y(s.value):.1f}"><title>{escape(s.tooltip)}</title></line>')
        last[s.track] = s
    if len(last) <= TRACK_LABELS:
        for track in sorted(last):
            first = min((s for s in steps if s.track == track), key=lambda s: s.start_s)
            out.append(f'<text class="axis track" x="{x(first.start_s) + 2:.1f}" y="{y(first.value) - 5:.1f}">{escape(track)}</text>')
    out.append(f'<line class="baseline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{plot_top + plot_h}" y2="{plot_top + plot_h}"/></svg>')
    return "".join(out)


def instant_s(iso: str) -> float | None:
    """A record's UTC ISO 8601 time ('2026-12-03T10:00:00.000Z') as Unix seconds; None when it is not one."""
    try:
        at = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()
