"""Charts as inline SVG, drawn on the server: they need no script, print, and follow
the page's light or dark colours (every colour is a CSS class of ``ui.css``; no
``style`` attribute, which the Content-Security-Policy forbids).

Each chart is ``role="img"`` named by its ``<title>`` and described by a ``<desc>``
that states the numbers, so a screen reader gets what the picture shows. Every piece
of text is escaped here; the result is :class:`markupsafe.Markup`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "Segment", "Series", "drift_bars", "hourly_bars", "metric_chart", "stage_lanes"]

#: Points per line drawn; longer histories are thinned evenly (the last point kept).
MAX_POINTS = 600
#: Dash patterns by series index, so lines differ by more than colour.
_DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a metric chart: its name and ``(step, value)`` points."""

    name: str
    points: Sequence[tuple[int, float]]


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    return f"{value:.4g}"


def _open(chart_id: str, width: int, height: int, title: str, desc: str, cls: str) -> str:
    return (
        f'<svg class="chart {cls}" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>'
    )


def hourly_bars(
    calls: Sequence[int],
    errors: Sequence[int],
    *,
    chart_id: str,
    title: str,
    width: int = 144,
    height: int = 32,
) -> Markup:
    """A bar per hour (calls), the errors of the hour drawn over its foot."""
    peak = max(calls, default=0)
    total, failed = sum(calls), sum(errors)
    desc = (
        f"{total:,} calls and {failed:,} errors in {len(calls)} hours; busiest hour {peak:,} calls."
    )
    out = [_open(chart_id, width, height, title, desc, "trend")]
    out.append(f'<line class="axis" x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>')
    if calls:
        step = width / len(calls)
        for i, (n, bad) in enumerate(zip(calls, errors, strict=True)):
            if not n:
                continue
            h = max(1.0, (height - 2) * n / peak)
            x = i * step + 0.5
            w = max(1.0, step - 1)
            out.append(
                f'<rect class="bar" x="{_f(x)}" y="{_f(height - 1 - h)}" '
                f'width="{_f(w)}" height="{_f(h)}"/>'
            )
            if bad:
                eh = max(1.0, h * bad / n)
                out.append(
                    f'<rect class="bar-error" x="{_f(x)}" y="{_f(height - 1 - eh)}" '
                    f'width="{_f(w)}" height="{_f(eh)}"/>'
                )
    out.append("</svg>")
    return Markup("".join(out))


def _thin(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return list(points)
    stride = math.ceil(len(points) / MAX_POINTS)
    kept = list(points[::stride])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


def metric_chart(
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    width: int = 640,
    height: int = 240,
) -> Markup:
    """Lines of value over step, one per series; NaN and ±inf break a line."""
    left, right, top, bottom = 60, 12, 10, 30
    lines = [_thin(s.points) for s in series]
    finite = [(x, y) for pts in lines for x, y in pts if math.isfinite(y)]
    summary = "; ".join(
        f"{s.name}: {len(s.points):,} points, last {_label(s.points[-1][1])}"
        if s.points
        else f"{s.name}: no points"
        for s in series
    )
    out = [_open(chart_id, width, height, title, summary or "no points", "metric")]
    if not finite:
        out.append(f'<text class="note" x="{width // 2}" y="{height // 2}" text-anchor="middle">')
        out.append("no finite values</text></svg>")
        return Markup("".join(out))
    x0, x1 = min(p[0] for p in finite), max(p[0] for p in finite)
    y0, y1 = min(p[1] for p in finite), max(p[1] for p in finite)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    if y0 == y1:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        y = sy(value)
        out.append(
            f'<line class="grid" x1="{left}" y1="{_f(y)}" x2="{width - right}" y2="{_f(y)}"/>'
        )
        out.append(
            f'<text class="tick" x="{left - 6}" y="{_f(y + 4)}" text-anchor="end">'
            f"{escape(_label(value))}</text>"
        )
    for value in sorted({x0, (x0 + x1) // 2, x1}):
        out.append(
            f'<text class="tick" x="{_f(sx(value))}" y="{height - 10}" text-anchor="middle">'
            f"{value}</text>"
        )
    out.append(
        f'<text class="tick" x="{width - right}" y="{height - 1}" text-anchor="end">step</text>'
    )
    for index, pts in enumerate(lines):
        dash = _DASHES[index % len(_DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        run: list[str] = []
        segments: list[list[str]] = [run]
        for x, y in pts:
            if math.isfinite(y):
                run.append(f"{_f(sx(x))},{_f(sy(y))}")
            elif run:
                run = []
                segments.append(run)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle class="series-{index % 6}" cx="{cx}" cy="{cy}" r="2.5"/>')
            elif seg:
                out.append(
                    f'<polyline class="line series-{index % 6}"{dash_attr} '
                    f'points="{" ".join(seg)}"/>'
                )
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True, slots=True)
class Bar:
    """One measure of a drift chart with its warn and alert thresholds."""

    label: str
    value: float
    warn: float
    alert: float

    @property
    def level(self) -> str:
        return "alert" if self.value >= self.alert else "warn" if self.value >= self.warn else "ok"


def drift_bars(bars: Sequence[Bar], *, chart_id: str, title: str, width: int = 560) -> Markup:
    """A horizontal bar per measure, with dashed marks at its warn and alert levels
    and the value written beside the bar (the level is not told by colour alone)."""
    label_w, value_w, row = 150, 110, 26
    height = max(1, len(bars)) * row + 8
    plot_w = width - label_w - value_w
    desc = "; ".join(
        f"{b.label} {_label(b.value)} ({b.level}; warn {b.warn:g}, alert {b.alert:g})" for b in bars
    )
    out = [_open(chart_id, width, height, title, desc or "no measures", "drift")]
    for i, bar in enumerate(bars):
        y = 4 + i * row
        scale = max(bar.value, bar.alert) * 1.2 or 1.0
        w = max(1.0, plot_w * min(bar.value, scale) / scale)
        out.append(
            f'<text class="tick" x="{label_w - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(bar.label)}</text>"
        )
        out.append(
            f'<rect class="level-{bar.level}" x="{label_w}" y="{y + 4}" '
            f'width="{_f(w)}" height="{row - 10}"/>'
        )
        for mark, cls in ((bar.warn, "mark-warn"), (bar.alert, "mark-alert")):
            mx = label_w + plot_w * mark / scale
            out.append(
                f'<line class="{cls}" x1="{_f(mx)}" y1="{y}" x2="{_f(mx)}" '
                f'y2="{y + row - 2}" stroke-dasharray="3 2"/>'
            )
        out.append(
            f'<text class="value" x="{label_w + plot_w + 8}" y="{y + 17}">'
            f"{escape(_label(bar.value))} {bar.level}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time during which a stage pointed at one version."""

    stage: str
    version: int
    start: dt.datetime
    end: dt.datetime


def stage_lanes(
    lanes: Sequence[tuple[str, Sequence[Segment]]],
    *,
    now: dt.datetime,
    chart_id: str,
    title: str,
    width: int = 720,
) -> Markup:
    """A lane per stage, a box per stretch of one version in it, left to right."""
    label_w, lane_h = 110, 30
    height = len(lanes) * lane_h + 24
    starts = [s.start for _, segs in lanes for s in segs]
    # At least an hour wide, ending now: moves made seconds ago still get a visible box.
    t0 = min([*starts, now - dt.timedelta(hours=1)])
    span = (now - t0).total_seconds()
    plot_w = width - label_w - 10

    def sx(t: dt.datetime) -> float:
        return label_w + (t - t0).total_seconds() / span * plot_w

    desc = "; ".join(
        f"{stage}: " + ", ".join(f"v{s.version} from {s.start:%Y-%m-%d %H:%M}" for s in segs)
        for stage, segs in lanes
    )
    out = [_open(chart_id, width, height, title, desc or "no stage moves", "lanes")]
    for i, (stage, segs) in enumerate(lanes):
        y = i * lane_h + 2
        out.append(
            f'<text class="tick" x="{label_w - 8}" y="{y + 19}" text-anchor="end">'
            f"{escape(stage)}</text>"
        )
        for j, seg in enumerate(segs):
            x, x2 = sx(seg.start), sx(seg.end)
            w = max(2.0, x2 - x)
            out.append(
                f"<g><title>{escape(stage)}: v{seg.version} from "
                f"{seg.start:%Y-%m-%d %H:%M} to {seg.end:%Y-%m-%d %H:%M} UTC</title>"
                f'<rect class="seg seg-{j % 2}" x="{_f(x)}" y="{y + 3}" width="{_f(w)}" '
                f'height="{lane_h - 8}" rx="3"/>'
            )
            if w >= 26:
                out.append(
                    f'<text class="seg-label" x="{_f(x + 5)}" y="{y + 19}">v{seg.version}</text>'
                )
            out.append("</g>")
    base_y = len(lanes) * lane_h + 16
    out.append(f'<text class="tick" x="{label_w}" y="{base_y}">{t0:%Y-%m-%d}</text>')
    out.append(f'<text class="tick" x="{width - 10}" y="{base_y}" text-anchor="end">now</text>')
    out.append("</svg>")
    return Markup("".join(out))
