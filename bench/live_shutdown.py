"""SIGTERM → process exit of a real `la run --mode live-session --live` with an open position on the mock exchange.

Per repetition: a fresh scratch install (strategy holds positions: far stop/target, no time exit), a signed
opt-in bound to it, the mock's accounts and ledger reset. Start the session; wait until the *exchange* (admin
API) shows an open position and the session has journaled ExecutionFill; then
  start = perf_counter() just before os.kill(SIGTERM);  stop = perf_counter() when waitpid returns.
After exit: exit code, SessionEnd.stopped_reason, and the mock account (positions and open orders) are checked.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import clean_env, la_cmd, scratch, wait_until
from bench.mockx import KEY, MockExchangeProcess, edit_json, setup_live

# 50 one-minute bars per real second: the strategy warms up from REST history and trades within seconds
MOCK_ARGS = ("--seed", "5", "--time-scale", "3000", "--push-interval-ms", "20", "--no-rate-limits")


def _events(root: Path) -> list[dict[str, Any]]:
    path = root / ".workspace" / "runs" / "latest" / "events.jsonl"
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def _one(mx: MockExchangeProcess) -> dict[str, Any]:
    mx.admin.reset()
    root = scratch()
    try:
        edit_json(root / "config" / "strategies" / "default.json",
                  exits={"stop_atr_mult": 20, "take_profit_r": 20, "max_hold_candles": 0}, cooldown_candles=0)
        env = {**clean_env(), **setup_live(root, mx)}
        proc = subprocess.Popen(la_cmd(root, "run", "--mode", "live-session", "--duration", "5", "--live", "--source",
                                       "bitunix", "--rest-url", mx.rest_url, "--ws-url", mx.public_ws_url),
                                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: proc.poll() is not None or bool(mx.account(KEY)["positions"]), timeout=90, poll=0.05,
                       what="an open position on the exchange")
            if proc.poll() is not None:
                raise RuntimeError(f"la run exited early ({proc.returncode}): {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            wait_until(lambda: any(e.get("event") == "ExecutionFill" for e in _events(root)), timeout=10, poll=0.01,
                       what="ExecutionFill journaled")
            position = mx.account(KEY)["positions"]
            started = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
            seconds = time.perf_counter() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        account = mx.account(KEY)
        events = _events(root)
        end = events[-1] if events else {}
        exits = [e for e in events if e.get("event") == "ExecutionExit"]
        return {
            "ms": round(seconds * 1000, 1),
            "exit_code": proc.returncode,
            "stopped_reason": end.get("stopped_reason"),
            "position_before": len(position),
            "exit_reason": exits[-1].get("reason") if exits else None,
            "exchange_flat": account["positions"] == [] and account["openOrders"] == [],
            "exchange_positions_after": len(account["positions"]),
            "exchange_open_orders_after": len(account["openOrders"]),
            "stderr_tail": err[-500:] if proc.returncode != 0 else "",
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_shutdown_live(repeat: int = 3) -> dict[str, Any]:
    with MockExchangeProcess(*MOCK_ARGS) as mx:
        runs = [_one(mx) for _ in range(repeat)]
    times = [r["ms"] for r in runs]
    return {
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "all_flat": all(r["exchange_flat"] for r in runs),
        "all_exit_0": all(r["exit_code"] == 0 for r in runs),
        "runs": runs,
        "start": "perf_counter() just before SIGTERM, with a position open on the exchange (admin API)",
        "stop": "perf_counter() when the la process has exited (waitpid)",
    }


if __name__ == "__main__":
    print(json.dumps(bench_shutdown_live(1), indent=2))
