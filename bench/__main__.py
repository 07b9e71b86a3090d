"""Benchmarks: `python -m bench` (or `make bench`). Prints a table and writes bench/results/<time>.json.

Measures, on this machine:
  replay      candles/s through the whole pipeline (CSV → Supervisor → PaperBroker → journal),
              with full journaling and with trade events only
  memory      tracemalloc growth across the replay; steady RSS of a real-time paper session
  startup     `la --help`; `la run` to the first CandleProcessed event; `la serve` to READY=1
  shutdown    SIGTERM to process exit with an open position flattened: paper, and a real
              `la run --live` against the mock exchange (account verified flat on the exchange)
  ws_frame    per-frame cost of the kline stream: parse + validate + assemble one frame, no I/O
              (bench/ws_frame.py)
  latency     frame-to-order: a WebSocket kline frame read by BitunixWsProvider → the signed
              place_order request written to the mock exchange's socket (bench/frame_to_order.py)
  chaos       (opt-in, ~10 min: --only chaos) the seeded kill -9 campaign of bench/chaos_campaign.py:
              30 live sessions on the mock killed at random moments and restarted, tallied from the ledger
Run one or a few with --only NAME[,NAME] (names: see --help's --only).
Targets (issue 7) are printed beside each number; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import psutil

from bench.common import LA, REPO, RESULTS
from bench.common import clean_env as _env
from bench.common import la_cmd as _la
from bench.common import scratch as _scratch


# ----------------------------------------------------------------------------- replay
def make_replay_file(path: Path, n: int) -> float:
    from laptop_agents.core.config_models import MockSettings
    from laptop_agents.data.providers.mock import MockBarGenerator
    from laptop_agents.data.providers.replay import write_candles

    started = time.perf_counter()
    write_candles(path, islice(MockBarGenerator(MockSettings(seed=26)), n))
    return time.perf_counter() - started


def bench_replay(data: Path, n: int, journal: str, trace_memory: bool) -> dict[str, Any]:
    import logging

    from laptop_agents.config_loader import load_config
    from laptop_agents.data.providers.replay import read_candles
    from laptop_agents.session.backtest import BacktestRunner
    from laptop_agents.session.workspace import Workspace

    root = _scratch()
    config = load_config(root / "config", env={})
    samples: list[tuple[int, int]] = []

    def traced(candles):  # type: ignore[no-untyped-def]
        for i, c in enumerate(candles, 1):
            if trace_memory and i % (n // 10 or 1) == 0:
                samples.append((i, tracemalloc.get_traced_memory()[0]))
            yield c

    if trace_memory:
        tracemalloc.start()
    runner = BacktestRunner(config, Workspace(root / ".workspace"), traced(read_candles(data)), source="bench",
                            total=n, candle_events=journal == "full", progress=False, console_level=logging.ERROR)
    started = time.perf_counter()
    runner.run()
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"candles": runner.pipeline.candles_processed, "seconds": round(wall, 3),
                           "candles_per_sec": round(runner.pipeline.candles_processed / wall),
                           "trades": len(runner.recorder.run_trades)}
    if trace_memory:
        tracemalloc.stop()
        if len(samples) >= 2:
            (i0, m0), (i1, m1) = samples[0], samples[-1]
            out["tracemalloc_growth_mb_per_1m"] = round((m1 - m0) / 1048576 / ((i1 - i0) / 1_000_000), 3)
            out["tracemalloc_samples_mb"] = [round(m / 1048576, 2) for _, m in samples]
    shutil.rmtree(root, ignore_errors=True)
    return out


def bench_pipeline_only(n: int) -> dict[str, Any]:
    """Candles already in memory, journal to /dev/null-like temp: the pure pipeline's cost."""
    import asyncio
    from datetime import timedelta

    from laptop_agents.agents.supervisor import Supervisor
    from laptop_agents.config_loader import load_config
    from laptop_agents.core.clock import SimulatedClock
    from laptop_agents.core.events import EventBus
    from laptop_agents.data.providers.mock import MockBarGenerator
    from laptop_agents.execution.broker import PaperBrokerPort
    from laptop_agents.paper.broker import PaperBroker
    from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
    from laptop_agents.session.pipeline import TradingPipeline

    config = load_config(REPO / "config", env={})
    bars = list(islice(MockBarGenerator(config.settings.mock), n))
    clock = SimulatedClock(bars[0].ts)
    breaker = TradingCircuitBreaker(config.risk.circuit_breaker, config.risk.hard_limits())
    pipeline = TradingPipeline(Supervisor(config.strategy, config.risk, config.settings.paper, breaker),
                               PaperBrokerPort(PaperBroker(config.settings.paper)), EventBus(), clock)
    minute = timedelta(minutes=1)

    async def run() -> None:
        for c in bars:
            clock.advance_to(c.ts + minute)
            await pipeline.process(c)

    started = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - started
    return {"candles": n, "seconds": round(wall, 3), "candles_per_sec": round(n / wall)}


# ----------------------------------------------------------------------------- processes
def bench_help(repeat: int = 7) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*LA, "--help"], capture_output=True, check=True, env=_env())
        times.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "min_ms": round(min(times) * 1000, 1)}


def _wait(predicate, timeout: float = 30.0, poll: float = 0.002) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(poll)
    raise TimeoutError("benchmark condition not reached")


def _first_event(root: Path, name: str) -> bool:
    events = root / ".workspace" / "runs" / "latest" / "events.jsonl"
    try:
        return f'"event":"{name}"' in events.read_text()
    except FileNotFoundError:
        return False


def bench_first_candle(repeat: int = 5) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        root = _scratch()
        started = time.perf_counter()
        proc = subprocess.Popen(_la(root, "run", "--source", "mock", "--duration", "1", "--candle-interval", "0.5"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _first_event(root, "CandleProcessed"))  # noqa: B023
        times.append(time.perf_counter() - started)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "min_ms": round(min(times) * 1000, 1)}


def bench_shutdown(repeat: int = 5) -> dict[str, Any]:
    times = []
    for _ in range(repeat):
        root = _scratch()
        strategy = root / "config" / "strategies" / "default.json"
        data = json.loads(strategy.read_text())
        data["exits"].update(stop_atr_mult=20, take_profit_r=20, max_hold_candles=0)
        strategy.write_text(json.dumps(data))
        state = root / ".workspace" / "paper" / "async_broker_state.json"
        proc = subprocess.Popen(_la(root, "run", "--source", "mock", "--duration", "5", "--candle-interval", "0.01"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def open_position(state: Path = state) -> bool:
            try:
                return bool(json.loads(state.read_text())["positions"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return False

        _wait(open_position)
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        times.append(time.perf_counter() - started)
        assert not json.loads(state.read_text())["positions"], "position not flattened"
        shutil.rmtree(root, ignore_errors=True)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "max_ms": round(max(times) * 1000, 1)}


def bench_serve_ready(repeat: int = 5) -> dict[str, Any]:
    """`la serve` start to READY=1 on a real NOTIFY_SOCKET (a Unix datagram socket we bind)."""
    import socket

    times = []
    for _ in range(repeat):
        root = _scratch()
        path = root / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(30)
        env = _env()
        env["NOTIFY_SOCKET"] = str(path)
        started = time.perf_counter()
        proc = subprocess.Popen(_la(root, "serve", "--source", "mock", "--candle-interval", "0.5", "--http-port", "0"),
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            times.append(time.perf_counter() - started)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            sock.close()
            shutil.rmtree(root, ignore_errors=True)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "max_ms": round(max(times) * 1000, 1)}


def bench_session_rss(seconds: float = 20.0) -> dict[str, Any]:
    root = _scratch()
    proc = subprocess.Popen(_la(root, "run", "--source", "mock", "--duration", str(seconds / 60 + 1), "--candle-interval", "0.01"),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = psutil.Process(proc.pid)
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(0.5)
        samples.append(p.memory_info().rss / 1048576)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)
    steady = samples[len(samples) // 4:]
    return {"steady_rss_mb": round(statistics.median(steady), 1), "max_rss_mb": round(max(samples), 1),
            "first_last_mb": [round(samples[0], 1), round(samples[-1], 1)], "seconds": seconds}


def bench_trades_csv(trades: int = 300) -> dict[str, Any]:
    """The cost a session pays per closed trade for a trades.csv that survives kill -9 (row appended, flushed and
    fsynced in the workspace's file system), beside the buffered append a replay uses."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from laptop_agents.core.models import Side, Trade
    from laptop_agents.reporting.trades_csv import TradesCsvAppender

    now = datetime.now(UTC)
    trade = Trade(trade_id="t-000001", side=Side.LONG, qty=Decimal("0.0123"), entry_ts=now, exit_ts=now,
                  entry_price=Decimal("95000.1"), exit_price=Decimal("95100.2"), gross_pnl=Decimal("1.23"),
                  fees=Decimal("0.14"), pnl=Decimal("1.09"), exit_reason="take_profit")
    out: dict[str, Any] = {"trades": trades}
    work = _scratch()
    try:
        for durable in (True, False):
            appender = TradesCsvAppender(Path(work) / f"trades-{durable}.csv", durable=durable)
            samples = []
            for _ in range(trades):
                started = time.perf_counter_ns()
                appender.append([trade])
                samples.append((time.perf_counter_ns() - started) / 1000)
            appender.close()
            samples.sort()
            out["durable" if durable else "buffered"] = {
                "p50": samples[len(samples) // 2], "p99": samples[int(len(samples) * 0.99)], "max": samples[-1]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- main
BENCHMARKS = ("replay", "memory", "pipeline", "rss", "help", "first_candle", "shutdown", "shutdown_live",
              "serve_ready", "frame_to_order", "ws_frame", "trades_csv", "chaos")
OPT_IN = ("chaos",)
"""Run only when named in --only (the kill -9 campaign takes minutes)."""


def _fmt_us(r: dict[str, Any]) -> str:
    return f"p50 {r['p50']:,.0f} / p99 {r['p99']:,.0f} / max {r['max']:,.0f} µs"


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    r = results.get
    if r("replay_full"):
        rows.append(("replay, full journal", f"{results['replay_full']['candles_per_sec']:,} candles/s", ">= 250,000"))
    if r("replay_trades_only"):
        rows.append(("replay, trade events only", f"{results['replay_trades_only']['candles_per_sec']:,} candles/s",
                     ">= 1,000,000"))
    if r("pipeline_only"):
        rows.append(("pipeline only (no I/O)", f"{results['pipeline_only']['candles_per_sec']:,} candles/s", "-"))
    if r("replay_memory"):
        rows.append(("replay memory growth",
                     f"{results['replay_memory'].get('tracemalloc_growth_mb_per_1m', 'n/a')} MB / 1M candles", "<= 1 MB"))
    if r("session_rss"):
        rows.append(("session steady RSS", f"{results['session_rss']['steady_rss_mb']} MB", "<= 80 MB"))
    if r("la_help"):
        rows.append(("la --help", f"{results['la_help']['median_ms']} ms", "<= 150 ms"))
    if r("first_candle"):
        rows.append(("la run → first candle", f"{results['first_candle']['median_ms']} ms", "<= 1000 ms"))
    if r("shutdown_paper"):
        rows.append(("SIGTERM → exit, paper, flattened", f"{results['shutdown_paper']['median_ms']} ms", "<= 500 ms"))
    if r("shutdown_live"):
        sl = results["shutdown_live"]
        flat = "flat" if sl["all_flat"] else "NOT FLAT"
        rows.append(("SIGTERM → exit, live on mock, flattened",
                     f"{sl['median_ms']} ms (max {sl['max_ms']}, {len(sl['runs'])}x, {flat})", "<= 2000 ms"))
    if r("frame_to_order"):
        f = results["frame_to_order"]
        if f.get("orders"):
            rows.append((f"frame → order written ({f['orders']} orders)", _fmt_us(f), "p50 <= 200, p99 <= 1,000 µs"))
            rows.append(("  same, minus REST round trips waited", _fmt_us(f["excluding_rest_wait_us"]), "-"))
            for kind in ("entry", "close"):
                if f["by_kind_us"].get(kind):
                    rows.append((f"  {kind} orders", _fmt_us(f["by_kind_us"][kind]), "-"))
            for kind, b in f["breakdown_us"].items():
                parts = [f"{k} {v['p50']:,.0f}" for k, v in b.items() if v.get("p50") is not None and k != "write_syscall"]
                rows.append((f"  {kind} breakdown, p50 µs", ", ".join(parts), "-"))
        else:
            rows.append(("frame → order written", "no order measured", "p50 <= 200 µs"))
    if r("ws_frame"):
        w = results["ws_frame"]
        rows.append((f"kline frame parse+validate+assemble ({w['frames']:,})",
                     f"{w['us_per_frame']} µs/frame (parse {w['parse_us_per_frame']}, "
                     f"assemble {w['assemble_us_per_frame']})", "-"))
    if r("serve_ready"):
        rows.append(("la serve → READY=1", f"{results['serve_ready']['median_ms']} ms", "<= 1500 ms"))
    if r("trades_csv"):
        rows.append(("trades.csv row per closed trade, fsynced", _fmt_us(results["trades_csv"]["durable"]), "-"))
        rows.append(("  same, buffered (replays)", _fmt_us(results["trades_csv"]["buffered"]), "-"))
    if r("chaos"):
        for name, value in results["chaos"]["summary"].items():
            target = "-" if name in ("trials", "killed mid-session", "orders / fills on the exchange") else "0"
            rows.append((f"kill -9 campaign (seed {results['chaos']['seed']}): {name}", str(value), target))
    return rows


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    value_width = min(max(len(r[1]) for r in rows), 60)
    print(f"\n{'benchmark':<{width}}  {'result':<{value_width}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {target}")


def _only(text: str | None) -> set[str]:
    if not text:
        return set(BENCHMARKS) - set(OPT_IN)
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"python -m bench: unknown benchmark(s) {sorted(unknown)}; known: {', '.join(BENCHMARKS)}")
    return names


def main() -> int:
    from bench.chaos_campaign import bench_chaos_campaign
    from bench.frame_to_order import bench_frame_to_order
    from bench.live_shutdown import bench_shutdown_live
    from bench.ws_frame import bench_ws_frame

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1_000_000, help="replay size (default 1,000,000)")
    parser.add_argument("--orders", type=int, default=None,
                        help="frame-to-order: orders to measure (default 2,000; --quick 300)")
    parser.add_argument("--quick", action="store_true", help="100,000 candles, 300 orders and fewer repeats")
    parser.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--chaos-trials", type=int, default=30, help="kill -9 campaign trials (default 30)")
    parser.add_argument("--chaos-seed", type=int, default=1, help="kill -9 campaign seed (default 1)")
    parser.add_argument("--profile-frame-to-order", metavar="FILE", type=Path,
                        help="write a pyinstrument profile of the frame-to-order loop (needs pyinstrument)")
    args = parser.parse_args()
    only = _only(args.only)
    n = 100_000 if args.quick else args.candles
    orders = args.orders or (300 if args.quick else 2000)
    repeat = 3 if args.quick else 7
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "cpu": platform.processor() or platform.machine(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "quick": args.quick,
        "only": sorted(only),
    }

    if only & {"replay", "memory"}:
        results["candles"] = n
        work = Path(tempfile.mkdtemp(prefix="la-bench-data-"))
        data = work / "replay.csv"
        print(f"generating {n:,} mock candles...", file=sys.stderr)
        results["generate_seconds"] = round(make_replay_file(data, n), 2)
        if "replay" in only:
            print("replay (full journal)...", file=sys.stderr)
            results["replay_full"] = bench_replay(data, n, "full", trace_memory=False)
            print("replay (trade events only)...", file=sys.stderr)
            results["replay_trades_only"] = bench_replay(data, n, "trades", trace_memory=False)
        if "memory" in only:
            print("replay memory (tracemalloc)...", file=sys.stderr)
            results["replay_memory"] = bench_replay(data, n, "trades", trace_memory=True)
        shutil.rmtree(work, ignore_errors=True)
    few = max(3, repeat // 2)
    # (name in --only, result key, what is printed while it runs, the measurement), in run order
    steps: list[tuple[str, str, str, Callable[[], dict[str, Any]]]] = [
        ("pipeline", "pipeline_only", "pipeline only (in-memory candles, no journal)",
         lambda: bench_pipeline_only(min(n, 200_000))),
        ("help", "la_help", "la --help", lambda: bench_help(repeat)),
        ("first_candle", "first_candle", "la run → first candle", lambda: bench_first_candle(few)),
        ("shutdown", "shutdown_paper", "shutdown (paper)", lambda: bench_shutdown(few)),
        ("shutdown_live", "shutdown_live", "shutdown (live on the mock exchange)", lambda: bench_shutdown_live(few)),
        ("serve_ready", "serve_ready", "la serve → READY=1", lambda: bench_serve_ready(few)),
        ("rss", "session_rss", "session RSS", lambda: bench_session_rss(10.0 if args.quick else 30.0)),
        ("frame_to_order", "frame_to_order", f"frame → order latency ({orders:,} orders against the mock exchange)",
         lambda: bench_frame_to_order(orders, args.profile_frame_to_order)),
        ("ws_frame", "ws_frame", "kline frame cost (parse + validate + assemble, in memory)",
         lambda: bench_ws_frame(50_000 if args.quick else 200_000)),
        ("trades_csv", "trades_csv", "trades.csv append per closed trade", lambda: bench_trades_csv()),
        ("chaos", "chaos", f"kill -9 campaign ({args.chaos_trials} trials, seed {args.chaos_seed})",
         lambda: bench_chaos_campaign(args.chaos_trials, args.chaos_seed)),
    ]
    for name, key, what, measure in steps:
        if name in only:
            print(f"{what}...", file=sys.stderr)
            results[key] = measure()

    _print_table(_rows(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
