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


def all_run_records(la_env: LaEnv, mode: str = "paper") -> dict[str, tuple[list[str], list[str]]]:
    """run id -> (trades.csv trade ids, ExecutionExit trade ids) for every run of the mode."""
    out = {}
    for run in sorted(p for p in (la_env.workspace / "runs").iterdir() if f"-{mode}-" in p.name and not p.is_symlink()):
        rows = [r["trade_id"] for r in trades_rows(run)] if (run / "trades.csv").exists() else []
        out[run.name] = (rows, [e["trade_id"] for e in la_env.events(run) if e["event"] == "ExecutionExit"])
    return out


def assert_complete_trail(booked: list[str], runs: dict[str, tuple[list[str], list[str]]]) -> None:
    """Every booked trade has exactly one trades.csv row, in the run whose journal holds its ExecutionExit;
    every run's rows are its own exits (no row twice, none missing)."""
    all_rows = [t for rows, _exits in runs.values() for t in rows]
    assert sorted(all_rows) == sorted(booked) and len(set(all_rows)) == len(all_rows), (booked, runs)
    for run, (rows, exits) in runs.items():
        assert rows == exits, (run, rows, exits)


@pytest.mark.slow
def test_kill_after_the_state_save_loses_no_trades_csv_row(la_env: LaEnv) -> None:
    """SIGKILL in the one window the append cannot cover (the trade booked in the state, its row not yet written):
    the next start appends the row to the killed run's trades.csv, so every booked trade has exactly one row."""
    killed = run_session(la_env, "2", extra_env={"LA_TEST_SIGKILL_AFTER_EXIT_SAVED": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_run = la_env.latest.resolve()
    booked = [t["trade_id"] for t in la_env.state()["trades"]]
    assert len(booked) == 2 and [r["trade_id"] for r in trades_rows(first_run)] == booked[:1]  # the window hit

    result = run_session(la_env, "0.03")
    assert result.returncode == 0, result.stderr
    assert_complete_trail([t["trade_id"] for t in la_env.state()["trades"]], all_run_records(la_env))
    assert [r["trade_id"] for r in trades_rows(first_run)] == booked
    second_run = la_env.latest.resolve()
    assert (second_run / "trades.csv").read_text().count("trade_id,") == 1
    assert booked[1] in (second_run / "system.jsonl").read_text()  # the recovery is logged in the new run

    again = run_session(la_env, "0.02")  # a later start finds nothing missing: no row twice
    assert again.returncode == 0, again.stderr
    assert_complete_trail([t["trade_id"] for t in la_env.state()["trades"]], all_run_records(la_env))


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


@pytest.mark.slow
def test_unusable_paths_exit_14_with_one_line_and_leave_no_lock(la_env: LaEnv, tmp_path: Path) -> None:
    """Bad paths are bad input, not bugs: a lock directory or workspace that is a file, a lock file that is a
    symlink. Each ends with exit 14, one line naming the path and the fix, and no lock left behind."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    lock_dir = Path(la_env.env["LA_LOCK_DIR"])
    as_file_ws = LaEnv(root=la_env.root, workspace=a_file / "ws", config_dir=la_env.config_dir, env=dict(la_env.env))
    la_env.lock.parent.mkdir(parents=True)
    la_env.lock.symlink_to(tmp_path / "elsewhere")
    cases = [
        (run_session(la_env, "0.02", extra_env={"LA_LOCK_DIR": str(a_file)}), str(a_file), "not a directory"),
        (run_session(as_file_ws, "0.02"), str(a_file), "not a directory"),
        (run_session(la_env, "0.02"), str(la_env.lock), "symbolic link"),
    ]
    for result, path, words in cases:
        assert result.returncode == 14, result.stderr[-3000:]
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and path in lines[0] and words in lines[0], result.stderr[-3000:]
    assert not (tmp_path / "elsewhere").exists() and la_env.lock.is_symlink()
    assert not list(lock_dir.glob("*.lock"))
    assert not la_env.latest.exists()
