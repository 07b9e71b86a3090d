"""The equity chart of summary.html: inline SVG, no script, no external asset.

Readable at a glance: equity as a step line on a real time axis (equity moves
only when a trade closes), the starting equity as a dashed baseline, a marker
per entry (triangle up for a long, down for a short) and per exit (a dot,
green for a win, red for a loss, with a hover title), and below it the
drawdown from the running peak as a red area with its worst value labelled.
Pure: values in, SVG text out. The live dashboard draws the same design in
the browser (service/dashboard.py), from the events it polls.
"""

from __future__ import annotations

import html
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# nice time-axis steps, seconds
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
               2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400)
MAX_MARKED_TRADES = 400  # beyond this the markers would hide the line; the table below still lists every trade
MAX_LINE_POINTS = 4000  # beyond this the line keeps, per pixel column, its first, lowest, highest and last point

LINE = "#2563eb"
WIN = "#16a34a"
LOSS = "#dc2626"
LONG = "#15803d"
SHORT = "#b91c1c"


@dataclass(frozen=True, slots=True)
class TradeMark:
    """One round trip to mark on the chart."""

    trade_id: str
    side: str  # LONG | SHORT
    entry_ts: datetime
    exit_ts: datetime
    pnl: float
    exit_reason: str


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A 1/2/2.5/5 x 10^k step that cuts `span` into about `target_ticks` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target_ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def time_step(span_sec: float, target_ticks: int = 6) -> int:
    for step in _TIME_STEPS:
        if span_sec / step <= target_ticks:
            return step
    return _TIME_STEPS[-1]


def _time_label(ts: datetime, step: int, span_sec: float) -> str:
    if span_sec > 2 * 86400:
        return ts.strftime("%m-%d" if step >= 86400 else "%m-%d %H:%M")
    if step < 60:
        return ts.strftime("%H:%M:%S")
    return ts.strftime("%H:%M")


def drawdown_pct(values: Sequence[float]) -> list[float]:
    """Drawdown from the running peak, in percent (0 or negative), per point."""
    out, peak = [], -math.inf
    for v in values:
        peak = max(peak, v)
        out.append(0.0 if peak <= 0 else (v - peak) / peak * 100)
    return out


def _thin(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Per pixel column keep first, min, max, last: the drawn line looks the same with far fewer points."""
    if len(xs) <= MAX_LINE_POINTS:
        return xs, ys
    out_x: list[float] = []
    out_y: list[float] = []
    i = 0
    while i < len(xs):
        col = int(xs[i])
        j = i
        while j < len(xs) and int(xs[j]) == col:
            j += 1
        seg = range(i, j)
        keep = sorted({i, j - 1, min(seg, key=ys.__getitem__), max(seg, key=ys.__getitem__)})
        out_x += [xs[k] for k in keep]
        out_y += [ys[k] for k in keep]
        i = j
    return out_x, out_y


def equity_chart_svg(curve: Sequence[tuple[datetime, float]], trades: Sequence[TradeMark] = (),
                     starting_equity: float | None = None, width: int = 900, height: int = 360) -> str:
    """The chart for an equity step curve (time, equity after that moment) and its trades."""
    e = html.escape
    points = sorted(curve, key=lambda p: p[0])
    if len(points) < 2:
        return '<p class="muted">Not enough data for an equity chart.</p>'
    t0, t1 = points[0][0], points[-1][0]
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [float(v) for _, v in points]
    base = float(starting_equity) if starting_equity is not None else values[0]
    lo, hi = min(values + [base]), max(values + [base])
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    ystep = nice_step(hi - lo, 4)
    lo, hi = math.floor(lo / ystep) * ystep, math.ceil(hi / ystep) * ystep
    dds = drawdown_pct(values)
    worst = min(dds)
    dd_lo = -nice_step(max(-worst, 0.01), 2) * 2 if worst < 0 else -1.0

    left, right, top = 78, 16, 14
    eq_h, gap, dd_h = int((height - 76) * 0.72), 16, int((height - 76) * 0.28)  # 46 px below for the time axis
    plot_w = width - left - right
    eq_bottom = top + eq_h
    dd_top = eq_bottom + gap
    dd_bottom = dd_top + dd_h

    def x(ts: datetime) -> float:
        return left + (ts - t0).total_seconds() / span * plot_w

    def y(v: float) -> float:
        return eq_bottom - (v - lo) / (hi - lo) * eq_h

    def ydd(v: float) -> float:
        return dd_top + v / dd_lo * dd_h if dd_lo else dd_top

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="equity curve with trade markers and drawdown" class="equity-chart" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    # y grid and labels (equity)
    v = lo
    while v <= hi + ystep / 2:
        yy = y(v)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
                     f'{v:,.2f}</text>')
        v += ystep
    parts.append(f'<text x="12" y="{top + eq_h / 2:.0f}" font-size="11" fill="#374151" '
                 f'transform="rotate(-90 12 {top + eq_h / 2:.0f})" text-anchor="middle">equity (USDT)</text>')
    # time grid and labels
    step = time_step(span)
    first = math.ceil(t0.timestamp() / step) * step
    tick = first
    while tick <= t1.timestamp() + 1e-6:
        ts = datetime.fromtimestamp(tick, tz=UTC)
        xx = x(ts)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{dd_bottom}" stroke="#f1f5f9"/>'
                     f'<text x="{xx:.1f}" y="{dd_bottom + 16}" text-anchor="middle" font-size="11" fill="#6b7280">'
                     f'{_time_label(ts, step, span)}</text>')
        tick += step
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11" '
                 f'fill="#374151">time (UTC) {e(t0.strftime("%Y-%m-%d %H:%M:%S"))} → '
                 f'{e(t1.strftime("%Y-%m-%d %H:%M:%S"))}</text>')
    # starting equity baseline
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(base):.1f}" y2="{y(base):.1f}" stroke="#9ca3af" '
                 f'stroke-dasharray="4 4"/><text x="{width - right - 4}" y="{y(base) - 4:.1f}" text-anchor="end" '
                 f'font-size="10" fill="#6b7280">start {base:,.2f}</text>')
    # the equity step line: flat until the next change, then a vertical step
    xs = [x(ts) for ts, _ in points]
    ys = [y(v) for v in values]
    xs_t, ys_t = _thin(xs, ys)
    d = [f"M{xs_t[0]:.1f},{ys_t[0]:.1f}"] + [f"H{xx:.1f}V{yy:.1f}" for xx, yy in zip(xs_t[1:], ys_t[1:], strict=True)]
    parts.append(f'<path d="{"".join(d)}" fill="none" stroke="{LINE}" stroke-width="2" class="equity-line"/>')
    # trade markers
    times = [ts for ts, _ in points]

    def equity_at(ts: datetime) -> float:
        i = bisect_right(times, ts) - 1
        return values[max(i, 0)]

    if len(trades) > MAX_MARKED_TRADES:
        parts.append(f'<text x="{left + 6}" y="{top + 12}" font-size="11" fill="#6b7280">{len(trades)} trades: '
                     'markers omitted (too dense); see the table</text>')
    else:
        for t in trades:
            ex, ey = x(t.entry_ts), y(equity_at(t.entry_ts))
            up = t.side.upper() == "LONG"
            tri = (f"{ex - 5:.1f},{ey + 9:.1f} {ex + 5:.1f},{ey + 9:.1f} {ex:.1f},{ey + 1:.1f}" if up else
                   f"{ex - 5:.1f},{ey - 9:.1f} {ex + 5:.1f},{ey - 9:.1f} {ex:.1f},{ey - 1:.1f}")
            parts.append(f'<polygon points="{tri}" fill="{LONG if up else SHORT}" class="entry-marker">'
                         f'<title>{e(t.trade_id)} {e(t.side)} entry {e(t.entry_ts.strftime("%H:%M:%S"))}</title>'
                         '</polygon>')
            xx, yy = x(t.exit_ts), y(equity_at(t.exit_ts))
            parts.append(f'<circle cx="{xx:.1f}" cy="{yy:.1f}" r="4" fill="{WIN if t.pnl >= 0 else LOSS}" '
                         f'stroke="#fff" stroke-width="1" class="exit-marker"><title>{e(t.trade_id)} exit '
                         f'{e(t.exit_reason)} {e(t.exit_ts.strftime("%H:%M:%S"))} pnl {t.pnl:+,.2f}</title>'
                         '</circle>')
    # drawdown panel
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{dd_top}" y2="{dd_top}" stroke="#9ca3af"/>'
                 f'<text x="{left - 6}" y="{dd_top + 4}" text-anchor="end" font-size="11" fill="#6b7280">0%</text>'
                 f'<text x="{left - 6}" y="{dd_bottom + 4}" text-anchor="end" font-size="11" fill="#6b7280">'
                 f'{dd_lo:.2f}%</text>'
                 f'<text x="12" y="{dd_top + dd_h / 2:.0f}" font-size="11" fill="#374151" '
                 f'transform="rotate(-90 12 {dd_top + dd_h / 2:.0f})" text-anchor="middle">drawdown</text>')
    dxs, dys = _thin(xs, [ydd(v) for v in dds])
    area = [f"M{dxs[0]:.1f},{dd_top}", f"V{dys[0]:.1f}"] + [f"H{a:.1f}V{b:.1f}" for a, b in zip(dxs[1:], dys[1:],
                                                                                                 strict=True)]
    area.append(f"V{dd_top}Z")
    parts.append(f'<path d="{"".join(area)}" fill="#fecaca" stroke="{LOSS}" stroke-width="1" class="drawdown"/>')
    parts.append(f'<text x="{width - right - 4}" y="{dd_bottom - 4}" text-anchor="end" font-size="11" '
                 f'fill="{LOSS if worst < 0 else "#6b7280"}">max drawdown {worst:.2f}%</text>')
    # legend
    lx = left + 8
    ly = top + (26 if len(trades) > MAX_MARKED_TRADES else 10)
    parts.append(f'<g font-size="11" fill="#374151"><rect x="{lx - 4}" y="{ly - 8}" width="330" height="18" '
                 f'fill="#ffffff" opacity="0.85"/>'
                 f'<line x1="{lx}" x2="{lx + 16}" y1="{ly}" y2="{ly}" stroke="{LINE}" stroke-width="2"/>'
                 f'<text x="{lx + 20}" y="{ly + 4}">equity</text>'
                 f'<polygon points="{lx + 70},{ly + 5} {lx + 80},{ly + 5} {lx + 75},{ly - 4}" fill="{LONG}"/>'
                 f'<polygon points="{lx + 84},{ly - 4} {lx + 94},{ly - 4} {lx + 89},{ly + 5}" fill="{SHORT}"/>'
                 f'<text x="{lx + 98}" y="{ly + 4}">entry long/short</text>'
                 f'<circle cx="{lx + 205}" cy="{ly}" r="4" fill="{WIN}"/><circle cx="{lx + 216}" cy="{ly}" r="4" '
                 f'fill="{LOSS}"/><text x="{lx + 224}" y="{ly + 4}">exit win/loss</text></g>')
    parts.append("</svg>")
    return "".join(parts)
