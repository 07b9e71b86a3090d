"""Operator commands on a workspace while no session or one session runs: `la stop`, `la clean`, `la reset-breaker`.

They act on the files a session owns (lock, status, state, breaker state) and never on a running session's
memory: a stop is a SIGTERM and a wait for the lock to go; a reset while a session runs is a request file the
session itself carries out (it is the only writer of its breaker state). Each returns the exit code or raises a
:class:`LaError` for the CLI to map.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from laptop_agents.core.errors import AlreadyRunningError, ExitCode
from laptop_agents.session.workspace import Workspace

RESET_REQUEST_TIMEOUT_SEC = 15.0


def stop_session(ws: Workspace, timeout_sec: float) -> int:
    """SIGTERM the session holding ``ws``'s lock and wait (up to ``timeout_sec``) until it released it."""
    from laptop_agents.session.lock import LockInfo, lock_is_held

    if not lock_is_held(ws.lock_path):
        print("STOPPED: no session is running")
        return ExitCode.OK
    info = LockInfo.read(ws.lock_path)
    if info is None:
        print(f"la: error: {ws.lock_path} is held but unreadable; stop the process by hand", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        print("STOPPED: the session exited just now")
        return ExitCode.OK
    print(f"sent SIGTERM to pid {info.pid} (run {info.run_id}); waiting for a clean shutdown...")
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        if not lock_is_held(ws.lock_path):
            try:
                reason = json.loads(ws.status_path.read_text()).get("stopped_reason")
            except (OSError, json.JSONDecodeError):
                reason = None
            print(f"STOPPED: session {info.run_id} finished ({reason or 'unknown reason'})")
            return ExitCode.OK
        time.sleep(0.05)
    print(f"la: error: pid {info.pid} still running after {timeout_sec:.0f}s", file=sys.stderr)
    return ExitCode.INTERNAL_ERROR


def clean_workspace(ws: Workspace, *, everything: bool) -> int:
    """Remove run artifacts (``everything``: also this mode's state); refused while a session runs."""
    import shutil

    from laptop_agents.session.lock import lock_is_held

    if lock_is_held(ws.lock_path):
        raise AlreadyRunningError("a session is running; stop it first (`la stop`)")
    removed: list[str] = []
    if ws.runs_dir.exists():
        shutil.rmtree(ws.runs_dir)
        removed.append(str(ws.runs_dir))
    if everything and ws.state_dir.exists():
        shutil.rmtree(ws.state_dir)
        removed.append(str(ws.state_dir))
    print("removed " + ", ".join(removed) if removed else "nothing to remove")
    if not everything:
        print(f"kept state in {ws.state_dir} (use --all to remove it too)")
    return ExitCode.OK


def reset_breaker(ws: Workspace, config_dir: Path) -> int:
    """Clear a tripped trading circuit breaker: in its state file, or through the running session that owns it."""
    from datetime import UTC, datetime

    from laptop_agents.config_loader import load_config
    from laptop_agents.core.state import StateManager
    from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
    from laptop_agents.session.lock import lock_is_held
    from laptop_agents.session.state_store import BREAKER_KIND, check_workspace_state
    from laptop_agents.session.workspace import BREAKER_STATE_NAME

    if lock_is_held(ws.lock_path):
        return _reset_running_breaker(ws)
    config = load_config(config_dir)
    states = StateManager(ws.state_dir)
    state = check_workspace_state(ws)  # an impossible state file is refused (exit 8), never rewritten
    if state is None or not state.tripped:
        print("circuit breaker is not tripped; nothing to do")
        return ExitCode.OK
    breaker = TradingCircuitBreaker(config.risk.circuit_breaker, config.risk.hard_limits(), state)
    was = breaker.state.reason
    now = datetime.now(UTC)
    breaker.reset(now, why="la reset-breaker")
    states.save(BREAKER_STATE_NAME, BREAKER_KIND, breaker.state.to_dict(), saved_at=now)
    print(f"circuit breaker reset (was tripped: {was})")
    return ExitCode.OK


def _reset_running_breaker(ws: Workspace, timeout_sec: float = RESET_REQUEST_TIMEOUT_SEC) -> int:
    """A session runs (e.g. `la serve`, halted by its breaker): ask it to reset its own breaker, wait for it.

    The running session is the only writer of its breaker state, so we hand it a request file
    (session/stay_up.py) rather than edit the state under its feet; it resets, persists and removes the file.
    """
    import contextlib

    from laptop_agents.core.state import atomic_write_text
    from laptop_agents.session.lock import LockInfo
    from laptop_agents.session.stay_up import reset_request_path

    path = reset_request_path(ws.state_dir)
    atomic_write_text(path, json.dumps({"pid": os.getpid(), "why": "la reset-breaker"}) + "\n")
    info = LockInfo.read(ws.lock_path)
    pid = info.pid if info else "?"
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        if not path.exists():
            print(f"circuit breaker reset by the running session (pid {pid}); it resumes trading unless something "
                  "else halts it")
            return ExitCode.OK
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        path.unlink()
    raise AlreadyRunningError(f"the running session (pid {pid}) did not take the reset request within "
                              f"{timeout_sec:.0f}s; stop it (`la stop`) and run `la reset-breaker` again")
