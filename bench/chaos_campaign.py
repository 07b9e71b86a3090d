"""A seeded randomized kill -9 campaign: live sessions on the mock exchange killed at random moments, restarted,
and judged from the exchange's ledger.

    python -m bench.chaos_campaign --trials 30 --seed 1        (or: python -m bench --only chaos)

Per trial (a fresh scratch install, the mock's accounts and ledger reset):
  1. `la run --live` (a strategy that opens and closes positions every few bars) is started;
  2. it is killed with SIGKILL at a random moment drawn from the trial's seed: either a random number of
     seconds after its first fill, or exactly while the mock holds a chosen request (the Nth place_order
     before or after the exchange processed it, the order query after a fill, the position query, the
     trade-history query that books an exit, the close sent during a SIGTERM shutdown);
  3. the held request is dropped or let through (random), then the session is restarted once and runs to its
     end (`--duration 0.1`, 6 s);
  4. the ledger audit (laptop_agents.mock_exchange.ledger_audit) over both runs counts duplicate orders
     (a clientId accepted twice or sent for two different orders), fills missing from trades.csv or
     events.jsonl, positions booked twice, positions/orders left open, equity the booked trades do not explain,
     and the restart's exit code (1 or a traceback = a bug).
Nothing here asserts; the table is the result. Same seed → same trial plan (timing still varies a little).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import RESULTS, clean_env, la_cmd, scratch, wait_until
from bench.mockx import KEY, MockExchangeProcess, edit_json, setup_live

# 20 one-minute bars per real second: a trade opens and closes within a second or two
MOCK_ARGS = ("--time-scale", "1200", "--push-interval-ms", "25", "--no-rate-limits")
FIRST_RUN_MINUTES = "3"
RESTART_MINUTES = "0.1"

ENTRY = ["trade/place_order"]
CLOSE_PATHS = ["trade/place_order", "trade/close_all_position", "trade/cancel_all_orders",
               "trade/flash_close_position"]

# (name, hold paths, phase, sigterm first, max skip): where a held request pins the kill
HOLD_MOMENTS: list[tuple[str, list[str], str, bool, int]] = [
    ("place_order before the exchange", ENTRY, "before", False, 3),
    ("place_order answer lost", ENTRY, "after", False, 3),
    ("order query after a fill", ["trade/get_order_detail"], "before", False, 3),
    ("position query", ["position/get_pending_positions"], "before", False, 4),
    ("trade-history query (booking)", ["trade/get_history_trades"], "before", False, 2),
    ("close during shutdown, answer lost", CLOSE_PATHS, "after", True, 0),
    ("close during shutdown, never sent", CLOSE_PATHS, "before", True, 0),
]


@dataclass
class Trial:
    index: int
    moment: str
    detail: str
    first_exit: int | None = None
    restart_exit: int | None = None
    restart_traceback: bool = False
    killed: bool = False
    orders: int = 0
    fills: int = 0
    duplicates: int = 0
    unbooked_fills: int = 0
    double_booked: int = 0
    positions_open: int = 0
    orders_open: int = 0
    unexplained: str = "0"
    problems: list[str] = field(default_factory=list)
    restart_tail: str = ""
    seconds: float = 0.0


def _events(root: Path) -> list[dict[str, Any]]:
    path = root / ".workspace" / "runs" / "latest" / "events.jsonl"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _has_fill(root: Path) -> bool:
    return any(e.get("event") == "ExecutionFill" for e in _events(root))


def _plan(rng: random.Random) -> tuple[str, dict[str, Any] | None, float, bool, str]:
    """(moment name, hold faults or None, delay after the first fill, SIGTERM first, release action)."""
    action = rng.choice(["drop", "proceed"])
    if rng.random() < 0.3:
        delay = round(rng.uniform(0.0, 4.0), 3)
        sigterm = rng.random() < 0.3
        return (f"random time {'during shutdown' if sigterm else 'after first fill'}", None, delay, sigterm, action)
    name, paths, phase, sigterm, max_skip = rng.choice(HOLD_MOMENTS)
    skip = rng.randint(0, max_skip)
    faults = {"rest_hold_next": 1, "rest_hold_skip": skip, "rest_hold_paths": paths, "rest_hold_phase": phase,
              "rest_hold_s": 30}
    return name, faults, 0.0, sigterm, action


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def run_trial(mx: MockExchangeProcess, index: int, rng: random.Random, lock_dir: Path,
              keep: Path | None = None) -> Trial:
    """One trial; if it shows a problem and ``keep`` is given, its runs and ledger are copied there."""
    from laptop_agents.mock_exchange.ledger_audit import audit, read_runs

    moment, faults, delay, sigterm, action = _plan(rng)
    detail = (f"skip {faults['rest_hold_skip']}, then {action}" if faults else f"{delay}s, then {action}")
    trial = Trial(index, moment, detail)
    started = time.perf_counter()
    mx.admin.reset()
    root = scratch()
    try:
        # trades open and close every few bars (a time exit), so later orders carry later clientIds
        edit_json(root / "config" / "strategies" / "default.json",
                  exits={"stop_atr_mult": 3, "take_profit_r": 2, "max_hold_candles": 4}, cooldown_candles=1)
        env = {**clean_env(), **setup_live(root, mx), "LA_LOCK_DIR": str(lock_dir)}
        args = ["run", "--mode", "live-session", "--live", "--source", "bitunix", "--rest-url", mx.rest_url,
                "--ws-url", mx.public_ws_url]
        proc = subprocess.Popen(la_cmd(root, *args[:4], "--duration", FIRST_RUN_MINUTES, *args[4:]), cwd=root,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            if faults is not None and not sigterm:
                mx.admin.set_faults(**faults)
            wait_until(lambda: proc.poll() is not None or _has_fill(root), timeout=120, poll=0.02,
                       what="the first fill")
            if faults is not None and sigterm:
                mx.admin.set_faults(**faults)
            if sigterm and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            if faults is not None:
                deadline = time.monotonic() + 60
                while proc.poll() is None and time.monotonic() < deadline:
                    if mx.admin.holds(wait_s=0.5)["holds"]:
                        break
            else:
                time.sleep(delay)
            trial.killed = proc.poll() is None
            _kill(proc)
            mx.admin.set_faults(rest_hold_next=0)
            mx.admin.release_holds(action)
            trial.first_exit = proc.returncode
        finally:
            _kill(proc)
            if proc.stderr is not None:
                proc.stderr.close()
        restart = subprocess.run(la_cmd(root, *args[:4], "--duration", RESTART_MINUTES, *args[4:]), cwd=root,
                                 env=env, capture_output=True, text=True, timeout=180)
        trial.restart_exit = restart.returncode
        trial.restart_traceback = "Traceback" in restart.stderr
        if restart.returncode != 0 or trial.restart_traceback:
            trial.restart_tail = restart.stderr[-1500:]
        ledger = mx.admin.ledger(type=["order_request", "fill"], account=KEY)
        result = audit(ledger["events"], ledger["accounts"][KEY], read_runs(root / ".workspace"))
        trial.orders = result.orders_accepted
        trial.fills = result.fills
        trial.duplicates = len(result.duplicate_client_ids)
        trial.unbooked_fills = result.unbooked_fills
        trial.double_booked = len(result.double_booked)
        trial.positions_open = result.open_positions
        trial.orders_open = result.open_orders
        trial.unexplained = str(result.unexplained)
        trial.problems = result.problems()
        if keep is not None and (trial.problems or restart.returncode != 0 or trial.restart_traceback):
            dest = keep / f"trial-{index:02d}"
            shutil.copytree(root / ".workspace" / "runs", dest / "runs", symlinks=True, dirs_exist_ok=True)
            (dest / "ledger.json").write_text(json.dumps(mx.admin.ledger(account=KEY), indent=1, default=str))
            (dest / "restart.stderr").write_text(restart.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        trial.seconds = round(time.perf_counter() - started, 1)
    return trial


def summarize(trials: list[Trial]) -> dict[str, Any]:
    return {
        "trials": len(trials),
        "killed mid-session": sum(t.killed for t in trials),
        "restarts that failed (exit != 0)": sum(t.restart_exit != 0 for t in trials),
        "restarts with exit 1 or a traceback": sum(t.restart_exit == 1 or t.restart_traceback for t in trials),
        "duplicate orders (clientIds)": sum(t.duplicates for t in trials),
        "unbooked fills": sum(t.unbooked_fills for t in trials),
        "positions booked twice / wrong qty": sum(t.double_booked for t in trials),
        "positions left open": sum(t.positions_open for t in trials),
        "orders left open": sum(t.orders_open for t in trials),
        "trials with unexplained equity": sum(Decimal(t.unexplained) != 0 for t in trials),
        "trials with any problem": sum(bool(t.problems) or t.restart_exit != 0 or t.restart_traceback
                                       for t in trials),
        "orders / fills on the exchange": f"{sum(t.orders for t in trials)} / {sum(t.fills for t in trials)}",
    }


def print_table(summary: dict[str, Any], trials: list[Trial], verbose: bool) -> None:
    if verbose:
        print(f"{'#':>3}  {'moment':<38} {'detail':<20} {'exit':>4} {'rst':>4} {'dup':>3} {'unb':>3} {'open':>4}  unexplained")
        for t in trials:
            print(f"{t.index:>3}  {t.moment:<38} {t.detail:<20} {str(t.first_exit):>4} {str(t.restart_exit):>4} "
                  f"{t.duplicates:>3} {t.unbooked_fills:>3} {t.positions_open:>4}  {t.unexplained}")
        print()
    width = max(len(k) for k in summary)
    print(f"{'kill -9 campaign':<{width}}  result")
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")


def bench_chaos_campaign(trials: int = 30, seed: int = 1, verbose: bool = False, only: set[int] | None = None,
                         keep: Path | None = None) -> dict[str, Any]:
    """``only``: run just these trial numbers (the plan of the others is drawn and skipped, so trial N is the
    same kill moment as in the full campaign); ``keep``: copy the artifacts of trials with a problem there."""
    rng = random.Random(seed)
    lock_dir = Path(tempfile.mkdtemp(prefix="la-chaos-locks-"))
    results: list[Trial] = []
    try:
        with MockExchangeProcess("--seed", str(seed), *MOCK_ARGS) as mx:
            for i in range(1, trials + 1):
                if only and i not in only:
                    _plan(rng)
                    continue
                trial = run_trial(mx, i, rng, lock_dir, keep)
                results.append(trial)
                print(f"trial {i}/{trials}: {trial.moment} ({trial.detail}): restart exit {trial.restart_exit}, "
                      f"{'; '.join(trial.problems) or 'clean'} [{trial.seconds}s]", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(lock_dir, ignore_errors=True)
    return {"seed": seed, "summary": summarize(results), "trials": [asdict(t) for t in results]}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos_campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per trial in the table")
    parser.add_argument("--only", metavar="N[,N]", help="run only these trial numbers (same plan as in the full run)")
    parser.add_argument("--keep", action="store_true",
                        help="copy runs, ledger and restart stderr of trials with a problem to bench/results/")
    args = parser.parse_args()
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    keep = RESULTS / f"chaos-{stamp}-seed{args.seed}-artifacts" if args.keep else None
    only = {int(x) for x in args.only.split(",")} if args.only else None
    out = bench_chaos_campaign(args.trials, args.seed, args.verbose, only, keep)
    print_table(out["summary"], [Trial(**{k: v for k, v in t.items()}) for t in out["trials"]], args.verbose)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"chaos-{stamp}-seed{args.seed}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
