"""Server-side SVG charts: no JavaScript, no network, colours from the page's CSS (light and dark).

Every label is escaped here; the SVG is returned as text for the page to include as is. Pure: no Airflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

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
