"""Frame-to-order latency: a kline frame read by BitunixWsProvider → the signed order request on the mock's socket.

Real components, in this process: BitunixWsProvider (aiohttp WebSocket) on the mock exchange's public stream,
TradingPipeline (Supervisor: strategy, risk gate, sizing) with the session's event-bus observers (RunRecorder
journal, StateStore), BitunixBroker over BitunixRestClient (rate limiter, circuit breaker, signing, aiohttp).
The mock exchange runs as a subprocess (`python -m laptop_agents.mock_exchange`) on 127.0.0.1.

What the harness forces (the measured path stays the real one):
  * every candle yields an order: the strategy's own update() runs, and when it has no signal a signal of
    alternating side is substituted (real ATR, real sizing, risk gate and intent); with max_hold_candles=1 the
    real Supervisor closes the position on the next candle. So orders alternate entry / close.
  * the trading circuit breaker's state is reset after each closed trade (thousands of back-to-back round trips
    would otherwise trip the daily-loss / consecutive-loss limits and stop the entries).
  * the REST client's rate limits are raised and the mock's are off: at 1-minute candles the documented limits
    (10/s, burst 1) never make an order wait, but a few hundred back-to-back orders would.
  * no private WebSocket stream: fills are confirmed by REST polling (after the order is sent; not measured).

Timestamps (time.perf_counter_ns, client side):
  t0  = entry of BitunixWsProvider.handle_message for the frame that closed the bar, i.e. just after
        aiohttp's ws.receive() returned that frame (the frame whose candle is then processed).
  t1  = the place_order POST's headers+body handed to the socket: aiohttp's StreamWriter write that carries the
        body has returned from transport.write() (a non-blocking send on an idle keep-alive connection).
  t1c = aiohttp TraceConfig on_request_chunk_sent of that POST (fires just before that write), reported too.
  Lower bound: on_request_start of the POST (before aiohttp builds the request) is in the breakdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import percentile, scratch
from bench.mockx import KEY, SECRET, MockExchangeProcess, edit_json

ns = time.perf_counter_ns
PLACE_ORDER = "/trade/place_order"
BAR_MS_REAL = 50  # one 1-minute bar every 50 ms real time (time scale 1200): the loop keeps up with 2,000 orders
PUSH_INTERVAL_MS = 10
WARMUP_ORDERS = 4  # the first orders pay one-off costs (first tickers call on the mock, connection pool fill)
MOCK_ARGS = ("--seed", "7", "--time-scale", str(60000 // BAR_MS_REAL), "--push-interval-ms", str(PUSH_INTERVAL_MS),
             "--no-rate-limits", "--balance", "1000000", "--history-days", "1")

SEGMENTS = [
    ("parse", "frame", "parsed", "handle_message: JSON parse + schema of the frame"),
    ("to_pipeline", "parsed", "candle", "bar-close detection, candle build, generator hand-off"),
    ("broker_on_candle", "bc0", "bc1", "BitunixBroker.on_candle (close: GET pending positions round trip)"),
    ("decision", "dec0", "dec1", "Supervisor.on_candle (strategy, gate, sizing, intent)"),
    ("pre_send", "dec1", "sign0", ("decision → signing (entry: WS ticker price, or a GET tickers round trip when it "
                                   "is stale; order checks, body JSON)")),
    ("sign", "sign0", "sign1", "signed_headers of the place_order request (nonce, 2x SHA-256)"),
    ("http_build", "sign1", "chunk", "aiohttp request build, connection reuse, task hop to the body write"),
    ("write", "chunk", "written", "headers+body to the socket (aiohttp StreamWriter.write → transport.write)"),
    ("write_syscall", "write0", "written", "of which the transport.write (send syscall on loopback)"),
]


class Probe:
    """Collects labelled perf_counter_ns marks for the candle being processed."""

    def __init__(self) -> None:
        self.frame_t0 = 0
        self.frame_t1 = 0
        self.cycle: dict[str, int] | None = None
        self.kind = ""
        self.samples: list[dict[str, int | str]] = []
        self.no_order: Counter[str] = Counter()
        self.awaiting_write = False
        self._get_start: dict[int, int] = {}

    def mark(self, label: str) -> None:
        if self.cycle is not None:
            self.cycle[label] = ns()

    def begin(self) -> None:
        self.cycle = {"frame": self.frame_t0, "parsed": self.frame_t1, "candle": ns()}
        self.kind = ""

    def end_candle(self) -> None:
        """After pipeline.process: a cycle still open produced no order."""
        if self.cycle is not None:
            self.no_order[self.kind or "no_order"] += 1
        self.cycle = None
        self.awaiting_write = False

    def finish(self, written: int) -> None:
        assert self.cycle is not None
        self.cycle["written"] = written
        self.samples.append({**self.cycle, "kind": self.kind})
        self.cycle = None
        self.awaiting_write = False


def _trace_config(probe: Probe) -> Any:
    import aiohttp

    trace = aiohttp.TraceConfig()

    async def on_start(_s: Any, _ctx: Any, params: Any) -> None:
        if probe.cycle is None:
            return
        if params.method == "POST" and params.url.path.endswith(PLACE_ORDER):
            probe.cycle["req_start"] = ns()
            probe.awaiting_write = True
        elif params.method == "GET":
            probe._get_start[id(_ctx)] = ns()

    async def on_end(_s: Any, _ctx: Any, params: Any) -> None:
        started = probe._get_start.pop(id(_ctx), None)
        if started is not None and probe.cycle is not None and "req_start" not in probe.cycle:
            probe.cycle["rtt"] = probe.cycle.get("rtt", 0) + ns() - started

    async def on_chunk(_s: Any, _ctx: Any, params: Any) -> None:
        if probe.awaiting_write and probe.cycle is not None and "chunk" not in probe.cycle:
            probe.cycle["chunk"] = ns()

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    trace.on_request_chunk_sent.append(on_chunk)
    return trace


@contextlib.contextmanager
def _instrumented(probe: Probe) -> Any:
    """Bench-only wrappers: signing (module attribute the transport calls) and aiohttp's socket writes."""
    from aiohttp import http_writer

    import laptop_agents.bitunix.transport as transport_mod  # instrumentation: times the signer inside the venue

    real_sign = transport_mod.signed_headers
    real_write = http_writer.StreamWriter._write
    real_writelines = http_writer.StreamWriter._writelines

    def timed_sign(**kwargs: Any) -> Any:
        t = ns()
        out = real_sign(**kwargs)
        if probe.cycle is not None:  # the last signature before the place_order's request start is its own
            probe.cycle["sign0"], probe.cycle["sign1"] = t, ns()
        return out

    def after_write(self: Any) -> None:
        if probe.awaiting_write and probe.cycle is not None and "chunk" in probe.cycle:
            probe.finish(ns())

    def before_write() -> None:
        if probe.awaiting_write and probe.cycle is not None and "chunk" in probe.cycle:
            probe.cycle["write0"] = ns()

    def write(self: Any, chunk: Any) -> None:
        before_write()
        real_write(self, chunk)
        after_write(self)

    def writelines(self: Any, chunks: Any) -> None:
        before_write()
        real_writelines(self, chunks)
        after_write(self)

    transport_mod.signed_headers = timed_sign
    http_writer.StreamWriter._write = write  # type: ignore[method-assign]
    http_writer.StreamWriter._writelines = writelines  # type: ignore[method-assign]
    try:
        yield
    finally:
        transport_mod.signed_headers = real_sign
        http_writer.StreamWriter._write = real_write  # type: ignore[method-assign]
        http_writer.StreamWriter._writelines = real_writelines  # type: ignore[method-assign]


async def _run(mx: MockExchangeProcess, root: Path, orders: int, probe: Probe, profile: Path | None) -> dict[str, Any]:
    import aiohttp

    from laptop_agents.agents.strategy import Signal
    from laptop_agents.agents.supervisor import Supervisor
    from laptop_agents.bitunix import BitunixRestClient, Credentials, EndpointGroup, LastPrice, RestConfig
    from laptop_agents.config_loader import load_config
    from laptop_agents.core.clock import SystemClock
    from laptop_agents.core.events import EventBus, EventName
    from laptop_agents.core.models import Side
    from laptop_agents.core.orchestrator import RunDirectory
    from laptop_agents.core.state import StateManager
    from laptop_agents.data.providers.bitunix_ws import (
        BitunixWsConfig,
        BitunixWsProvider,
    )
    from laptop_agents.execution.bitunix_broker import STATE_KIND, BitunixBroker
    from laptop_agents.execution.live_start import broker_settings_for
    from laptop_agents.resilience.rate_limiter import RateLimit
    from laptop_agents.resilience.trading_circuit_breaker import (
        BreakerState,
        TradingCircuitBreaker,
    )
    from laptop_agents.session.pipeline import TradingPipeline
    from laptop_agents.session.recorder import RunRecorder
    from laptop_agents.session.state_store import StateStore

    config = load_config(root / "config", env={})
    clock = SystemClock()
    session = aiohttp.ClientSession(trace_configs=[_trace_config(probe)])
    rest_cfg = RestConfig(base_url=mx.rest_url, timeout_sec=5.0,
                          rate_limits={g: RateLimit(100_000.0, 1000.0) for g in EndpointGroup})
    client = BitunixRestClient(rest_cfg, Credentials(KEY, SECRET), session=session)
    # as `la run --live` wires it: the provider's public ticker feeds the broker's price protection
    ticker_max_age_ms = config.settings.bitunix.ticker_max_age_ms
    last_price = (LastPrice(config.strategy.symbol, max_age_sec=ticker_max_age_ms / 1000)
                  if ticker_max_age_ms > 0 else None)
    broker = BitunixBroker(client, broker_settings_for(config, 5), last_price=last_price)
    start_events = await broker.start(clock.now())
    breaker = TradingCircuitBreaker(config.risk.circuit_breaker, config.risk.hard_limits())
    supervisor = Supervisor(config.strategy, config.risk, config.settings.paper, breaker)
    bus = EventBus()
    pipeline = TradingPipeline(supervisor, broker, bus, clock)
    run_dir = RunDirectory(root / "runs", "bench-frame-to-order").create()
    recorder = RunRecorder(run_dir, bus, broker, config, mode="live", source="bitunix", started_at=clock.now())
    bus.subscribe(StateStore(StateManager(root / "state"), broker.to_state, lambda: breaker.state.to_dict(),
                             broker_kind=STATE_KIND, now=clock.now))
    rejected: Counter[str] = Counter()

    def on_event(event: Any) -> None:
        if event.name == EventName.ORDER_REJECTED:
            rejected[str(event.data.get("reason"))] += 1

    bus.subscribe(on_event)
    bus.publish_all(start_events)

    # -- the forced signal: the strategy's update() runs; no signal → alternate sides
    strategy = supervisor.strategy
    real_update = strategy.update
    flip = [Side.LONG]

    def update(candle: Any) -> Signal | None:
        signal = real_update(candle)
        if signal is None and strategy.atr:
            side = flip[0]
            flip[0] = Side.SHORT if side is Side.LONG else Side.LONG
            signal = Signal(side, strategy.atr, "bench: forced")
        return signal

    real_on_candle = supervisor.on_candle

    def on_candle(*args: Any, **kwargs: Any) -> Any:
        probe.mark("dec0")
        decision = real_on_candle(*args, **kwargs)
        probe.mark("dec1")
        if decision.intent is not None:
            probe.kind = "entry"
        elif decision.close_reason:
            probe.kind = "close"
        else:  # why no order (e.g. a risk rejection), for the report
            reasons = [str(e.data.get("reason")) for e in decision.events if e.name == EventName.RISK_REJECTED]
            probe.kind = "none:" + ",".join(reasons) if reasons else "none"
        return decision

    real_trade_closed = supervisor.on_trade_closed

    def on_trade_closed(*args: Any, **kwargs: Any) -> Any:
        decision = real_trade_closed(*args, **kwargs)
        breaker.state = BreakerState()
        decision.stop_reason = None
        return decision

    real_broker_on_candle = broker.on_candle

    async def broker_on_candle(*args: Any, **kwargs: Any) -> Any:
        probe.mark("bc0")
        out = await real_broker_on_candle(*args, **kwargs)
        probe.mark("bc1")
        return out

    supervisor.on_candle = on_candle  # type: ignore[method-assign]
    supervisor.on_trade_closed = on_trade_closed  # type: ignore[method-assign]
    broker.on_candle = broker_on_candle  # type: ignore[method-assign]

    provider = BitunixWsProvider(BitunixWsConfig(symbol=config.strategy.symbol, interval="1m", ws_url=mx.public_ws_url,
                                                 rest_url=mx.rest_url, stall_timeout_sec=10.0),
                                 last_price=last_price)
    real_handle = provider.handle_message

    def handle_message(raw: Any) -> Any:
        t0 = ns()
        out = real_handle(raw)
        if out is not None:
            probe.frame_t0, probe.frame_t1 = t0, ns()
        return out

    provider.handle_message = handle_message  # type: ignore[method-assign]
    strategy_warmup = await provider.warm_up(config.strategy.warmup_candles)
    pipeline.warm_up(strategy_warmup)
    strategy.update = update  # type: ignore[method-assign]

    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001, async_mode="enabled")
    candles = 0
    started = time.perf_counter()
    backfilled_before = provider.backfilled_candles
    try:
        async with contextlib.aclosing(provider.candles()) as stream:
            async for candle in stream:
                candles += 1
                if candles == 3 and profiler is not None:
                    profiler.start()
                probe.begin()
                stop = await pipeline.process(candle)
                probe.end_candle()
                recorder.journal.flush()
                if stop:
                    raise RuntimeError(f"pipeline asked to stop: {stop}")
                if len(probe.samples) >= orders:
                    break
    finally:
        if profiler is not None and profiler.is_running:
            profiler.stop()
            profile.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        wall = time.perf_counter() - started
        await provider.close()
        with contextlib.suppress(Exception):
            await broker.shutdown("bench_end", clock.now())
        recorder.journal.close()
        await session.close()
    return {"candles": candles, "wall_s": round(wall, 2), "warmup_candles": len(strategy_warmup),
            "rejected": dict(rejected), "backfilled_candles": provider.backfilled_candles - backfilled_before,
            "reconnects": provider.reconnects, "trades": len(broker.trades),
            "entry_price_sources": dict(broker.price_sources)}


def _stats_us(values_ns: list[int]) -> dict[str, float]:
    v = sorted(values_ns)
    if not v:
        return {}
    return {"p50": round(percentile(v, 50) / 1000, 1), "p99": round(percentile(v, 99) / 1000, 1),
            "max": round(v[-1] / 1000, 1), "mean": round(statistics.fmean(v) / 1000, 1)}


def _breakdown(samples: list[dict[str, int | str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, a, b, _what in SEGMENTS:
        vals = [int(s[b]) - int(s[a]) for s in samples if a in s and b in s]
        out[name] = _stats_us(vals)
    out["rest_wait"] = _stats_us([int(s["rtt"]) for s in samples if "rtt" in s])
    return out


def bench_frame_to_order(orders: int = 2000, profile: Path | None = None, pin: bool = True) -> dict[str, Any]:
    """``pin``: client on one CPU, mock exchange on another (if the process may use two or more). Without it, on a
    small machine the loopback send() that wakes the mock can preempt the client mid-syscall, an artefact a remote
    exchange does not have."""
    root = scratch()
    edit_json(root / "config" / "strategies" / "default.json",
              exits={"stop_atr_mult": 20, "take_profit_r": 20, "max_hold_candles": 1}, cooldown_candles=0)
    probe = Probe()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = pin and len(cpus) >= 2
    try:
        with MockExchangeProcess(*MOCK_ARGS) as mx, _instrumented(probe):
            if pinned:
                assert mx.proc is not None
                os.sched_setaffinity(mx.proc.pid, {cpus[1]})
                os.sched_setaffinity(0, {cpus[0]})
            try:
                run = asyncio.run(_run(mx, root, orders, probe, profile))
            finally:
                if pinned:
                    os.sched_setaffinity(0, set(cpus))
            account = mx.account(KEY)
            flat = account["positions"] == [] and account["openOrders"] == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
    samples = [s for s in probe.samples if "chunk" in s][WARMUP_ORDERS:]
    total = [int(s["written"]) - int(s["frame"]) for s in samples]
    total_chunk = [int(s["chunk"]) - int(s["frame"]) for s in samples]
    own = [int(s["written"]) - int(s["frame"]) - int(s.get("rtt", 0)) for s in samples]
    out: dict[str, Any] = {"orders": len(samples), "warmup_orders_excluded": WARMUP_ORDERS, **_stats_us(total),
                           "to_chunk_sent_us": _stats_us(total_chunk),
                           "excluding_rest_wait_us": _stats_us(own),
                           "pinned_cpus": {"client": cpus[0], "mock": cpus[1]} if pinned else None,
                           "by_kind_us": {k: _stats_us([int(s["written"]) - int(s["frame"]) for s in samples if s["kind"] == k])
                                          for k in ("entry", "close")},
                           "no_order_candles": dict(probe.no_order), "exchange_flat_after": flat, **run}
    out["breakdown_us"] = {kind: _breakdown([s for s in samples if s["kind"] == kind]) for kind in ("entry", "close")}
    out["segments"] = {name: what for name, _a, _b, what in SEGMENTS}
    out["segments"]["rest_wait"] = ("on_request_start → on_request_end of the GETs before the order (entry: tickers, "
                                    "only when the WS ticker price is stale; close: pending positions): mostly the "
                                    "mock exchange's time")
    out["t0"] = "BitunixWsProvider.handle_message entry for the bar-closing frame (after ws.receive() returned it)"
    out["t1"] = "place_order POST headers+body returned from transport.write() (aiohttp StreamWriter)"
    out["targets"] = {"p50_us": 200, "p99_us": 1000}
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument text profile of the measured loop here")
    parser.add_argument("--no-pin", action="store_true")
    a = parser.parse_args()
    print(json.dumps(bench_frame_to_order(a.orders, a.profile, pin=not a.no_pin), indent=2))
