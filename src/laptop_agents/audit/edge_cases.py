"""`la audit --edge-cases`: the spec's edge-case table, run for real in a scratch workspace on mock data.

Each case starts `la` as a subprocess (the same binary, this config), provokes
the condition, and compares what the artifacts say with what the spec expects.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laptop_agents.core.errors import ExitCode

PASS, FAIL = "PASS", "FAIL"
FAST = ["--source", "mock", "--candle-interval", "0.01"]


class _Scratch:
    def __init__(self, config_dir: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="la-audit-"))
        self.config = self.root / "config"
        shutil.copytree(config_dir, self.config)
        self.ws = self.root / ".workspace"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "laptop_agents", *args, "--workspace", str(self.ws), "--config-dir", str(self.config)]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LA_")}
        env.update(extra or {})
        return env

    def run(self, *args: str, extra: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=self.root, env=self.env(extra), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cmd(*args), cwd=self.root, env=self.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)

    def hold_positions(self) -> None:
        path = self.config / "strategies" / "default.json"
        data = json.loads(path.read_text())
        data["exits"].update(stop_atr_mult=20, take_profit_r=20, max_hold_candles=0)
        path.write_text(json.dumps(data, indent=2))

    def events(self) -> list[dict[str, Any]]:
        path = self.ws / "runs" / "latest" / "events.jsonl"
        out = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def positions(self) -> list[Any]:
        try:
            return json.loads((self.ws / "paper" / "async_broker_state.json").read_text())["positions"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return []

    def wait(self, predicate: Callable[[], bool], timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def end(self) -> dict[str, Any]:
        ends = [e for e in self.events() if e.get("event") == "SessionEnd"]
        return ends[-1] if ends else {}

    def lock_gone(self) -> bool:
        return not (self.ws / "paper" / "async_session.lock").exists()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _case(name: str, expected: str, observed: str, ok: bool) -> dict[str, Any]:
    return {"name": name, "expected": expected, "observed": observed, "status": PASS if ok else FAIL}


def _open_then(s: _Scratch, act: Callable[[subprocess.Popen[str]], object]) -> tuple[int | None, str]:
    s.hold_positions()
    proc = s.start("run", "--duration", "2", *FAST)
    if not s.wait(lambda: bool(s.positions())):
        proc.kill()
        return None, "no position opened"
    act(proc)
    try:
        return proc.wait(timeout=60), ""
    except subprocess.TimeoutExpired:
        proc.kill()
        return None, "did not exit"


def _kill_and_reap(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no shutdown code runs
    proc.wait()


def _exit_reasons(s: _Scratch) -> list[str]:
    return [e.get("reason", "") for e in s.events() if e.get("event") == "ExecutionExit"]


def kill_switch_env(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        code, problem = _open_then(s, _kill_and_reap)
        held = len(s.positions())
        r = s.run("run", "--duration", "1", *FAST, extra={"LA_KILL_SWITCH": "TRUE"})
        end = s.end()
        ok = r.returncode == ExitCode.KILL_SWITCH and end.get("stopped_reason") == "kill_switch" and not s.positions() and held == 1 \
            and "kill_switch" in _exit_reasons(s) and s.lock_gone()
        observed = problem or (f"exit {r.returncode}, stopped_reason {end.get('stopped_reason')}, restored position "
                               f"closed with reasons {_exit_reasons(s)}, positions left {len(s.positions())}")
        return _case("Kill switch (LA_KILL_SWITCH=TRUE)", "immediate graceful shutdown, positions closed", observed, ok)


def kill_switch_file(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        code, problem = _open_then(s, lambda p: (s.ws / "kill.txt").write_text("audit\n"))
        end = s.end()
        ok = code == ExitCode.KILL_SWITCH and end.get("stopped_reason") == "kill_switch" and not s.positions() and s.lock_gone()
        observed = problem or (f"exit {code}, stopped_reason {end.get('stopped_reason')}, exits {_exit_reasons(s)[-1:]}"
                               f", positions left {len(s.positions())}")
        return _case("Kill switch (kill.txt)", "immediate graceful shutdown, positions closed", observed, ok)


def stale_data(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        r = s.run("run", "--duration", "2", *FAST, "--inject-gap-at", "1", "--gap-duration", "35",
                  extra={"LA_SESSION__STALE_DATA_TIMEOUT_SEC": "30"})
        stale = [e for e in s.events() if e.get("event") == "StaleDataDetected"]
        end = s.end()
        ok = r.returncode == ExitCode.STALE_DATA and end.get("stopped_reason") == "stale_data" and bool(stale) and s.lock_gone()
        observed = (f"exit {r.returncode}, stopped_reason {end.get('stopped_reason')}, data age "
                    f"{stale[0].get('data_age_sec') if stale else '-'}s at detection")
        return _case("Stale data (35 s gap, 30 s timeout)", "shutdown with stopped_reason: stale_data", observed, ok)


def circuit_breaker(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        r = s.run("run", "--duration", "0.06", "--source", "mock", "--scenario", "losing_streak",
                  "--candle-interval", "0.005")
        events = s.events()
        trips = [i for i, e in enumerate(events) if e.get("event") == "CircuitBreakerTripped"]
        after = events[trips[0]:] if trips else []
        losses = [e for e in events[: trips[0]] if e.get("event") == "ExecutionExit"] if trips else []
        halted = trips and not any(e.get("event") == "OrderSubmitted" for e in after)
        ok = bool(trips) and bool(halted) and len(losses) == 5 and all(e.get("pnl", 0) < 0 for e in losses)
        observed = (f"exit {r.returncode}; tripped: {events[trips[0]].get('reason')} after {len(losses)} losing trades; "
                    f"entries after trip: {'none' if halted else 'SOME'}") if trips else f"exit {r.returncode}; no trip"
        return _case("Circuit breaker (5 consecutive losses)", "trips, halts trading, logs reason", observed, ok)


def sigterm(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        code, problem = _open_then(s, lambda p: p.send_signal(signal.SIGTERM))
        end = s.end()
        ok = code == ExitCode.OK and end.get("stopped_reason") == "sigterm" and not s.positions() and s.lock_gone() \
            and _exit_reasons(s)[-1:] == ["shutdown"]
        observed = problem or (f"exit {code}, stopped_reason {end.get('stopped_reason')}, close_all exit "
                               f"{_exit_reasons(s)[-1:]}, lock {'gone' if s.lock_gone() else 'LEFT'}")
        return _case("SIGTERM mid-position", "graceful shutdown, close_all() called", observed, ok)


def memory_watchdog(config_dir: Path) -> dict[str, Any]:
    with _Scratch(config_dir) as s:
        r = s.run("run", "--duration", "1", *FAST,
                  extra={"LA_SESSION__MAX_MEMORY_MB": "20", "LA_SESSION__WATCHDOG_INTERVAL_SEC": "0.2"})
        end = s.end()
        ok = r.returncode == ExitCode.WATCHDOG and end.get("stopped_reason") == "watchdog_memory" and s.lock_gone()
        observed = f"exit {r.returncode}, stopped_reason {end.get('stopped_reason')} (limit lowered to 20 MB)"
        return _case("Memory pressure (limit lowered)", "watchdog stops the session (exit 7)", observed, ok)


CASES: list[Callable[[Path], dict[str, Any]]] = [
    kill_switch_env, kill_switch_file, stale_data, circuit_breaker, sigterm, memory_watchdog,
]


def run_edge_cases(config_dir: Path, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    results = []
    for case in CASES:
        if progress:
            progress(case.__name__)
        try:
            results.append(case(config_dir))
        except Exception as exc:  # noqa: BLE001 - a case that cannot run is a failed case, with the reason
            results.append(_case(case.__name__, "see spec", f"could not run: {type(exc).__name__}: {exc}", False))
    return results
