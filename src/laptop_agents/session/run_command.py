"""`la run`: check the request, then run a backtest, a background session or a foreground session, and report.

The session itself is assembled by session/compose.py; this module decides which one, in the order the
checks have always run (config, workspace, flag combinations), and prints the one-line outcome. Errors are
raised as :class:`LaError` for the CLI to map to an exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from laptop_agents.core.errors import ExitCode, LaError, UsageError
from laptop_agents.session import compose
from laptop_agents.session.compose import ObserverFactory, Observers
from laptop_agents.session.options import RunRequest
from laptop_agents.session.workspace import Workspace

DETACH_START_TIMEOUT_SEC = 30.0


def run_command(request: RunRequest, argv: Sequence[str], dashboard: ObserverFactory | None = None) -> int:
    """`la run`; ``argv`` is the command line (re-run in the background by --detach), ``dashboard`` builds the
    `--dashboard` page's observers (the service layer's, handed in by the CLI)."""
    config = compose.load_session_config(request)
    workspace = compose.session_workspace(request)
    if request.live and request.backtest:
        raise UsageError("--live is for --mode live-session; a backtest never trades on the exchange")
    compose.check_live_source(request.live, request.data_source)
    if request.backtest:
        return _backtest(request, config, workspace)
    if request.data_source == "replay":
        raise UsageError("--source replay needs --mode backtest")
    if request.detach:
        return detach(argv, workspace)

    from laptop_agents.core.logger import setup_logging

    setup_logging(None, compose.console_level(request))
    observers = dashboard(config, workspace) if request.dashboard and dashboard is not None else Observers()
    router = compose.session_alerts(request, workspace.mode, config.strategy.symbol)
    if router is not None:
        observers = observers + Observers.of(router)
    observers = observers + Observers.of(compose.console_reporter(request))
    runner = compose.compose_run(request, config, workspace, observers)
    try:
        code = runner.run()
    except LaError as err:
        if router is not None:
            router.refused(str(err), int(err.exit_code))
        raise
    finally:
        if router is not None:
            router.notifier.close(timeout=5.0)
    from laptop_agents.session.async_session import ORDINARY_FAILURES

    if runner.stopped_reason in ORDINARY_FAILURES:  # cause and fix, on stderr, like every refusal
        not_flat = "; and shutdown could NOT verify the account is flat: check it on the exchange now" \
            if code == ExitCode.NOT_FLAT else ""
        print(f"la: error: {runner.stop_detail}{not_flat}", file=sys.stderr)
    print(
        f"session {runner.run_id} ended: {runner.stopped_reason} (exit {code}); "
        f"{len(runner.recorder.run_trades)} trades; equity {runner.paper.equity} USDT; "
        f"artifacts {runner.run_dir.path}"
    )
    return code


def _backtest(request: RunRequest, config: Any, workspace: Workspace) -> int:
    from laptop_agents.core.logger import setup_logging

    if request.detach:
        raise UsageError("--detach is for live sessions; a backtest runs in the foreground")
    level = compose.console_level(request)
    setup_logging(None, level)
    runner = compose.compose_backtest(request, config, workspace, level)
    code = runner.run()
    n = runner.pipeline.candles_processed
    print(f"backtest {runner.run_id} ended: {runner.stopped_reason} (exit {code}); {n} candles in "
          f"{runner.wall_seconds:.2f}s ({n / max(runner.wall_seconds, 1e-9):,.0f}/s); "
          f"{len(runner.recorder.run_trades)} trades; equity {runner.paper.equity} USDT; artifacts {runner.run_dir.path}")
    return code


def detach(argv: Sequence[str], workspace: Workspace) -> int:
    """Re-run ``la <argv>`` without --detach in a new session, output appended to the workspace's detach log; return
    once it holds the lock (0) or exited (its code)."""
    from laptop_agents.session.lock import LockInfo, lock_is_held

    argv = [a for a in argv if a != "--detach"]
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = workspace.detach_log_path
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "laptop_agents", *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, cwd=os.getcwd(),
        )
    deadline = time.monotonic() + DETACH_START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        code = proc.poll()
        info = LockInfo.read(workspace.lock_path)
        if info and info.pid == proc.pid and info.run_id and lock_is_held(workspace.lock_path):
            print(f"started session {info.run_id} in the background (pid {proc.pid}); output: {log_path}")
            return ExitCode.OK
        if code is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
            print(f"la: error: the background session exited with code {code}: {' '.join(tail)}", file=sys.stderr)
            return code
        time.sleep(0.05)
    print(f"la: error: the background session (pid {proc.pid}) did not start within 30 s; see {log_path}",
          file=sys.stderr)
    return ExitCode.INTERNAL_ERROR
