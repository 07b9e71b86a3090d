"""Per-frame cost of the Bitunix kline stream: parse + validate + assemble one WebSocket frame, no I/O.

The frames are what the mock exchange pushes (push-time ``ts``, ten pushes per 1-minute bar, the bar-to-date
OHLCV growing), fed to ``BitunixWsProvider.handle_message`` and then to the assembler (through the provider's
``on_push`` when it has one, so the freshness bookkeeping is included), with the market clock following the
frames. Bars that close are completed without REST (backfill off). Reports µs per frame: in all, parsing
alone, and the assembler step alone (validation, time bounds, freshness; closing bars excluded).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

MIN = 60_000
T0 = 1_732_178_880_000


def _frames(n: int) -> list[tuple[int, str]]:
    out = []
    per_bar = 10
    price = 60000.0
    for i in range(n):
        bar, k = divmod(i, per_bar)
        start = T0 + bar * MIN
        if k == 0:
            o = price
            hi = lo = o
            vol = 0.0
        price += ((i * 7919) % 13 - 6) * 0.5
        hi, lo = max(hi, price), min(lo, price)
        vol += 1.25
        ts = start + (k + 1) * (MIN // (per_bar + 1))
        out.append((ts, json.dumps({"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": ts, "data": {
            "o": f"{o:.1f}", "c": f"{price:.1f}", "h": f"{hi:.1f}", "l": f"{lo:.1f}",
            "b": f"{vol:.4f}", "q": f"{vol * price:.2f}"}})))
    return out


def bench_ws_frame(n: int = 200_000) -> dict[str, Any]:
    from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider

    frames = _frames(n)
    now = [frames[0][0] + 5]
    provider = BitunixWsProvider(BitunixWsConfig(backfill=False), wall_clock=lambda: now[0] / 1000)
    feed = getattr(provider, "on_push", None) or provider._assembler.on_push
    complete = provider._complete
    handle = provider.handle_message
    loop = asyncio.new_event_loop()
    closed = 0
    try:
        started = time.perf_counter_ns()
        pushes = [(ts, handle(raw)) for ts, raw in frames]
        parsed = time.perf_counter_ns()
        complete_ns = 0
        for ts, push in pushes:
            now[0] = ts + 5
            transition = feed(push)
            if transition is not None:
                t = time.perf_counter_ns()
                closed += len(loop.run_until_complete(complete(transition)))
                complete_ns += time.perf_counter_ns() - t
        done = time.perf_counter_ns()
    finally:
        loop.close()
    rejected = sum(getattr(provider, "rejected_frames", {}).values())
    return {"frames": n, "us_per_frame": round((done - started) / n / 1000, 2),
            "parse_us_per_frame": round((parsed - started) / n / 1000, 2),
            "assemble_us_per_frame": round((done - parsed - complete_ns) / n / 1000, 2),
            "candles": closed, "rejected": rejected}
