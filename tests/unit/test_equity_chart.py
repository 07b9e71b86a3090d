"""The equity chart's structure (the browser test renders it; this needs no browser)."""

from __future__ import annotations

import re
from datetime import timedelta

from laptop_agents.reporting.equity_chart import MAX_LINE_POINTS, TradeMark, drawdown_pct, equity_chart_svg, nice_step
from tests.unit.helpers import T0


def test_time_axis_markers_drawdown() -> None:
    curve = [(T0, 10000.0), (T0 + timedelta(seconds=40), 10005.0), (T0 + timedelta(seconds=95), 9990.0),
             (T0 + timedelta(seconds=180), 9995.0)]
    trades = [TradeMark("T1", "LONG", T0 + timedelta(seconds=10), T0 + timedelta(seconds=40), 5.0, "take_profit"),
              TradeMark("T2", "SHORT", T0 + timedelta(seconds=60), T0 + timedelta(seconds=95), -15.0, "stop_loss")]
    svg = equity_chart_svg(curve, trades, starting_equity=10000)
    assert svg.count('class="entry-marker"') == 2 and svg.count('class="exit-marker"') == 2
    assert re.findall(r">(\d\d:\d\d:\d\d)</text>", svg)[:2] == ["00:00:00", "00:00:30"], "ticks every 30 s"
    assert "max drawdown -0.15%" in svg and "stop_loss" in svg and "pnl -15.00" in svg
    x = [float(v) for v in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert x[0] < x[1], "markers placed by time"
    assert drawdown_pct([100, 110, 99, 120]) == [0.0, 0.0, -10.0, 0.0]
    assert nice_step(7.3, 4) == 2 and nice_step(0.013, 2) == 0.01


def test_many_points_stay_small_and_no_markup_injection() -> None:
    curve = [(T0 + timedelta(seconds=i), 10000.0 + (i % 7)) for i in range(50_000)]
    svg = equity_chart_svg(curve, [TradeMark("<b>x</b>", "LONG", T0, T0 + timedelta(seconds=1), 1.0, "<i>")])
    assert len(svg) < 60 * MAX_LINE_POINTS and "<b>" not in svg and "&lt;b&gt;" in svg
    assert equity_chart_svg(curve[:1]).startswith("<p")
