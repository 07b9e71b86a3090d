"""`la run` as a real process: one session per account, clear exits for a disk that refuses writes, and a
trades.csv that keeps every closed trade through kill -9.

Disk tests mount a real read-only bind / a real tiny tmpfs over the workspace (root and mount(2) needed; they
skip where the machine does not allow it) and unmount it afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LaEnv
from tests.e2e.test_paper_session import FAST, run_session, trades_rows


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("la: error:")]


@pytest.mark.slow
def test_deleted_paper_lock_file_lets_no_second_session_in(la_env: LaEnv) -> None:
    first = la_env.start("run", "--duration", "2", *FAST)
    la_env.wait_for(lambda: la_env.lock.exists() and la_env.latest.exists(), what="first session running")
    la_env.lock.unlink()
    second = run_session(la_env, "0.05")
    assert second.returncode == 3, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and len(error_lines(second.stderr)) == 1
    assert f"pid {first.pid}" in second.stderr and str(la_env.workspace) in second.stderr
    # the holder takes its lock file back, so `la status` / `la stop` see it again
    la_env.wait_for(la_env.lock.exists, timeout=10, what="the lock file restored by its holder")
    status = json.loads(la_env.run("status", "--json").stdout)
    assert status["state"] == "RUNNING" and status["pid"] == first.pid
    assert la_env.run("stop").returncode == 0
    assert first.wait(timeout=10) == 0
    assert not la_env.lock.exists()


@pytest.mark.slow
def test_killed_run_keeps_every_closed_trade_and_a_restart_writes_its_own_once(la_env: LaEnv) -> None:
    proc = la_env.start("run", "--duration", "2", *FAST)
    exits = lambda: [e for e in la_env.events() if e["event"] == "ExecutionExit"]  # noqa: E731
    la_env.wait_for(lambda: len(exits()) >= 3, timeout=60, what="three closed trades")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first_run = la_env.latest.resolve()
    journaled = [e["trade_id"] for e in exits()]
    booked = [t["trade_id"] for t in la_env.state()["trades"]]
    rows = [r["trade_id"] for r in trades_rows(first_run)]
    # the row follows the state save, which follows the journal line: a kill lands between them at worst
    assert rows == booked[: len(rows)] and len(booked) - len(rows) <= 1, (rows, booked)
    assert journaled[: len(rows)] == rows and len(journaled) - len(rows) <= 1
    assert len(rows) >= 2

    result = run_session(la_env, "0.03")
    assert result.returncode == 0, result.stderr
    second_run = la_env.latest.resolve()
    second_rows = [r["trade_id"] for r in trades_rows(second_run)]
    second_exits = [e["trade_id"] for e in la_env.events(second_run) if e["event"] == "ExecutionExit"]
    assert second_rows == second_exits and len(set(second_rows)) == len(second_rows)
    assert (second_run / "trades.csv").read_text().count("trade_id,") == 1
    assert not set(second_rows) & set(rows)


# ----------------------------------------------------------------------------- disks that refuse writes
def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def mounted(*args: str, target: Path) -> Iterator[None]:
    try:
        _mount(*args, str(target))
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot mount here ({exc})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_read_only_workspace_exits_14_with_one_line(la_env: LaEnv) -> None:
    assert run_session(la_env, "0.02").returncode == 0  # a workspace with state in it
    state_before = la_env.broker_state.read_bytes()
    with mounted("--bind", "-o", "ro", str(la_env.workspace), target=la_env.workspace):
        result = run_session(la_env, "0.05")
        assert result.returncode == 14, result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and "read-only" in lines[0] and str(la_env.workspace) in lines[0], result.stderr
    assert la_env.broker_state.read_bytes() == state_before


def _fill(directory: Path) -> None:
    """Take every free block of the file system (unbuffered: stops exactly at ENOSPC)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_full_disk_mid_session_stops_with_14_and_keeps_the_last_good_state(la_env: LaEnv) -> None:
    la_env.workspace.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=16m", "tmpfs", target=la_env.workspace):
        la_env.hold_positions()
        proc = la_env.start("run", "--duration", "2", *FAST)
        la_env.wait_for(lambda: la_env.broker_state.exists() and la_env.state()["positions"], timeout=60,
                        what="an open position saved")
        _fill(la_env.workspace)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 14, err[-3000:]
        lines = error_lines(err)
        assert len(lines) == 1 and "disk is full" in lines[0] and "ENOSPC" in lines[0], lines
        saved = la_env.state()  # the last good version: atomic writes never leave a torn file
        assert saved["positions"], "the position the disk could not record closed stays in the saved state"
        (la_env.workspace / "filler").unlink()
        # space is back: the next session restores that position and ends flat
        again = run_session(la_env, "0.03")
        assert again.returncode == 0, again.stderr
        assert la_env.state()["positions"] == []


def test_disk_error_classification() -> None:
    from laptop_agents.core.errors import DiskError, ExitCode, LaError

    full = DiskError.from_os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "/w/x.json", "write")
    assert full.exit_code == ExitCode.DISK_ERROR and "/w/x.json" in str(full) and "free space" in str(full)
    other = DiskError.from_os_error(OSError(errno.EBADF, os.strerror(errno.EBADF)), "/w/x.json")
    assert type(other) is LaError and other.exit_code == ExitCode.INTERNAL_ERROR
