"""Charts as inline SVG: line charts over the run's time and latency histograms. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from chainette.utils.histogram import latency_bounds

PALETTE = [
    "#2f6fd0",
    "#e07b00",
    "#2e9b4f",
    "#c62828",
    "#8a3fb8",
    "#0097a7",
    "#8d6e63",
    "#d81b60",
    "#5c6bc0",
    "#7cb342",
    "#f9a825",
    "#546e7a",
]

Point = tuple[float, float]


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:g}k"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:g}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m" if seconds % 60 == 0 else f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[tuple[str, Sequence[Sequence[Point]]]],
    *,
    y_label: str,
    markers: Sequence[tuple[float, str]] = (),
    width: int = 1120,
    height: int = 250,
    x_end: float | None = None,
) -> str:
    """A line chart over run time: ``series`` is ``[(label, [segment, ...]), ...]``, a segment
    a list of ``(seconds, value)`` points (a new segment after a gap: another session);
    ``markers`` are vertical lines (``(seconds, label)``) such as ``resumed``."""
    left, right, top, bottom = 64, 16, 30, 44
    pw, ph = width - left - right, height - top - bottom
    xs = [x for _, segs in series for seg in segs for x, _ in seg]
    ys = [y for _, segs in series for seg in segs for _, y in seg]
    out = [f'<figure class="chart" id="{escape(chart_id)}"><figcaption>{escape(title)}</figcaption>']
    if not xs:
        out.append('<p class="muted empty">no data recorded for this chart</p></figure>')
        return "".join(out)
    x_max = max(x_end or 0.0, max(xs), 1e-9)
    y_ticks = nice_ticks(max(ys) if ys else 1.0)
    y_max = y_ticks[-1] or 1.0
    x_ticks = nice_ticks(x_max, 8)
    if x_ticks[-1] > x_max * 1.2:
        x_ticks = [t for t in x_ticks if t <= x_max] or x_ticks[:2]

    def px(x: float) -> float:
        return left + pw * x / x_max

    def py(y: float) -> float:
        return top + ph - ph * y / y_max

    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}">'
    )
    for t in y_ticks:
        y = py(t)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#616e7c">'
            f"{fmt_tick(t)}</text>"
        )
    for t in x_ticks:
        if t > x_max * 1.001:
            continue
        x = px(t)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#9aa5b1"/>'
            f'<text x="{x:.1f}" y="{top + ph + 17}" text-anchor="middle" font-size="11" fill="#616e7c">'
            f"{fmt_duration(t)}</text>"
        )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" stroke="#9aa5b1"/>'
        f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11" '
        f'fill="#616e7c">time since the run started (sessions back to back)</text>'
        f'<text x="12" y="{top + ph / 2:.0f}" transform="rotate(-90 12 {top + ph / 2:.0f})" '
        f'text-anchor="middle" font-size="11" fill="#616e7c">{escape(y_label)}</text>'
    )
    for x_val, label in markers:
        x = px(x_val)
        out.append(
            f'<line class="session-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" '
            f'stroke="#9aa5b1" stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{top + 11}" '
            f'font-size="11" fill="#616e7c">{escape(label)}</text>'
        )
    for k, (label, segments) in enumerate(series):
        c = colour(k)
        for seg in segments:
            if not seg:
                continue
            if len(seg) == 1:
                x, y = seg[0]
                out.append(
                    f'<circle class="series" data-series="{escape(label)}" cx="{px(x):.1f}" '
                    f'cy="{py(y):.1f}" r="2.5" fill="{c}"/>'
                )
                continue
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in seg)
            out.append(
                f'<polyline class="series" data-series="{escape(label)}" points="{pts}" fill="none" '
                f'stroke="{c}" stroke-width="1.8" stroke-linejoin="round"><title>{escape(label)}</title>'
                "</polyline>"
            )
    out.append("</svg>")
    out.append(
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{colour(k)}"></i>{escape(label)}</span>' for k, (label, _) in enumerate(series)
        )
        + "</div></figure>"
    )
    return "".join(out)


def latency_histogram(
    step_id: str, counts: Sequence[int], pcts: Sequence[float | None], k: int, width: int = 360, height: int = 120
) -> str:
    """A small bar chart of one step's latency histogram (log-scale x), p50/p95/p99 marked."""
    used = [i for i, c in enumerate(counts) if c]
    out = [f'<figure class="hist" data-step="{escape(step_id)}"><figcaption>{escape(step_id)}</figcaption>']
    if not used:
        out.append('<p class="muted empty">no requests</p></figure>')
        return "".join(out)
    lo, hi = max(0, used[0] - 2), min(len(counts) - 1, used[-1] + 2)
    left, right, top, bottom = 8, 8, 8, 30
    pw, ph = width - left - right, height - top - bottom
    n = hi - lo + 1
    bw = pw / n
    peak = max(counts[lo : hi + 1])
    c = colour(k)
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="latency distribution of {escape(step_id)}">'
    )
    for j, i in enumerate(range(lo, hi + 1)):
        if not counts[i]:
            continue
        h = max(1.0, ph * counts[i] / peak)
        low, high = latency_bounds(i)
        out.append(
            f'<rect x="{left + j * bw:.1f}" y="{top + ph - h:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{c}" opacity="0.8"><title>{fmt_latency(low)}–{fmt_latency(high)}: '
            f"{counts[i]:,} requests</title></rect>"
        )
    for q, v in zip(("p50", "p95", "p99"), pcts, strict=False):
        if v is None:
            continue
        pos = _bucket_position(v, lo, n, pw) + left
        out.append(
            f'<line x1="{pos:.1f}" x2="{pos:.1f}" y1="{top}" y2="{top + ph}" stroke="#1f2933" '
            f'stroke-dasharray="3 2"/><text x="{pos:.1f}" y="{top + ph + 12}" text-anchor="middle" '
            f'font-size="10" fill="#1f2933">{q}</text>'
        )
    low, _ = latency_bounds(lo)
    _, high = latency_bounds(hi)
    out.append(
        f'<text x="{left}" y="{height - 3}" font-size="10" fill="#616e7c">{fmt_latency(low)}</text>'
        f'<text x="{width - right}" y="{height - 3}" text-anchor="end" font-size="10" fill="#616e7c">'
        f"{fmt_latency(high)}</text></svg></figure>"
    )
    return "".join(out)


def _bucket_position(value: float, lo: int, n: int, pw: float) -> float:
    from chainette.utils.histogram import latency_bucket

    i = latency_bucket(value)
    return pw * (i - lo + 0.5) / n


def fmt_latency(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"
