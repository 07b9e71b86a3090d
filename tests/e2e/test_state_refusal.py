"""`la run` refuses every impossible state file of issue 13: exit 8, one line naming file, field and value, the file
byte-identical afterwards, no run started. The cases run as parallel processes (one workspace each)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from laptop_agents.core.state import StateManager
from laptop_agents.session.state_store import BREAKER_KIND, BROKER_KIND
from laptop_agents.session.workspace import BREAKER_STATE_NAME, BROKER_STATE_NAME
from tests.conftest import LaEnv
from tests.unit.test_state_schema import _set, breaker_state, paper_state

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)

BROKER_CASES: list[tuple[str, Any]] = [
    ("equity", "-10000"), ("equity", "0"), ("equity", float("inf")), ("equity", 1e30), ("equity", float("nan")),
    ("positions.0.qty", "-5"), ("positions.0.qty", "1e6"), ("positions.0.entry_price", "0"), ("trades", {}),
    ("seq", -100),
]
BREAKER_CASES: list[tuple[str, Any]] = [
    ("consecutive_losses", -50), ("daily_realized_pnl", "1000000"), ("peak_equity", "-1"), ("tripped", "maybe"),
    ("daily_realized_pnl", float("nan")),
]


def _workspace(root: Path, broker: dict[str, Any], breaker: dict[str, Any]) -> Path:
    states = StateManager(root / "paper")
    states.save(BROKER_STATE_NAME, BROKER_KIND, broker, saved_at=SAVED_AT)
    states.save(BREAKER_STATE_NAME, BREAKER_KIND, breaker, saved_at=SAVED_AT)
    return root


@pytest.mark.slow
def test_each_impossible_state_exits_8_with_one_line_and_the_file_untouched(la_env: LaEnv) -> None:
    cases = [("broker", f, v) for f, v in BROKER_CASES] + [("breaker", f, v) for f, v in BREAKER_CASES]
    started = []
    # the valid pair is accepted (doctor validates exactly what a session start does)
    good = _workspace(la_env.root / "ws-good", paper_state(), breaker_state())
    for i, (which, field, value) in enumerate(cases):
        broker, breaker = paper_state(), breaker_state()
        if which == "broker":
            broker = _set(broker, field, value)
        else:
            breaker = _set(breaker, field, value)
        ws = _workspace(la_env.root / f"ws-{i}", broker, breaker)
        path = ws / "paper" / (BROKER_STATE_NAME if which == "broker" else BREAKER_STATE_NAME)
        cmd = la_env.cmd("run", "--mode", "live-session", "--duration", "0.05", "--source", "mock")
        cmd[cmd.index("--workspace") + 1] = str(ws)
        proc = subprocess.Popen(cmd, cwd=la_env.root, env=la_env.full_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        la_env.procs.append(proc)
        started.append((field, value, path, path.read_bytes(), proc, ws))
    doctor_cmd = la_env.cmd("doctor")
    doctor_cmd[doctor_cmd.index("--workspace") + 1] = str(good)
    ok = subprocess.run(doctor_cmd, cwd=la_env.root, env=la_env.full_env(), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "state: async_broker_state.json, circuit_breaker_state.json valid" in ok.stdout, ok.stdout
    for field, value, path, before, proc, ws in started:
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 8, (field, value, out, err)
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(path) in lines[0] and f"{field.split('.')[0]}" in lines[0], lines[0]
        shown = json.dumps(value) if isinstance(value, float) else str(value)
        assert shown.strip('"').lower().replace("infinity", "inf") in lines[0].lower().replace("infinity", "inf"), lines[0]
        assert path.read_bytes() == before, f"{path} was modified"
        assert not (ws / "runs").exists(), "no run was started"
        assert not (ws / "paper" / "async_session.lock").exists()
