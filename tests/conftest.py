"""Shared fixtures: an isolated workspace + config dir, and `la` as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LaEnv:
    """A scratch installation: its own workspace, config dir and environment."""

    root: Path
    workspace: Path
    config_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "laptop_agents", *args, "--workspace", str(self.workspace),
                "--config-dir", str(self.config_dir)]

    def full_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LA_")}
        env.update(self.env)
        env.update(extra or {})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=self.root, env=self.full_env(extra_env), capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.cmd(*args), cwd=self.root, env=self.full_env(extra_env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    # ---------------------------------------------------------------- config edits
    def edit_json(self, rel: str, **changes: Any) -> None:
        path = self.config_dir / rel
        data = json.loads(path.read_text())
        _deep_update(data, changes)
        path.write_text(json.dumps(data, indent=2))

    def edit_yaml(self, rel: str, **changes: Any) -> None:
        path = self.config_dir / rel
        data = yaml.safe_load(path.read_text())
        _deep_update(data, changes)
        path.write_text(yaml.safe_dump(data))

    def hold_positions(self) -> None:
        """Strategy config whose positions stay open (far stop/target, no time exit)."""
        self.edit_json("strategies/default.json", exits={"stop_atr_mult": 20, "take_profit_r": 20, "max_hold_candles": 0})

    # ---------------------------------------------------------------- artifacts
    @property
    def latest(self) -> Path:
        return self.workspace / "runs" / "latest"

    @property
    def lock(self) -> Path:
        return self.workspace / "paper" / "async_session.lock"

    @property
    def broker_state(self) -> Path:
        return self.workspace / "paper" / "async_broker_state.json"

    def events(self, run_dir: Path | None = None) -> list[dict[str, Any]]:
        path = (run_dir or self.latest) / "events.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def system_log(self, run_dir: Path | None = None) -> list[dict[str, Any]]:
        path = (run_dir or self.latest) / "system.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def state(self) -> dict[str, Any]:
        return json.loads(self.broker_state.read_text())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def wait_for_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self.events() if e.get("event") == name]
            return bool(found)

        self.wait_for(seen, timeout, f"event {name}")
        return found[-1]


def _deep_update(data: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _deep_update(data[key], value)
        else:
            data[key] = value


@pytest.fixture
def la_env(tmp_path: Path) -> Iterator[LaEnv]:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    # the host-wide account-lock directory, per test: sessions of other tests (and other runs) never meet
    env = LaEnv(root=tmp_path, workspace=tmp_path / ".workspace", config_dir=config_dir,
                env={"LA_LOCK_DIR": str(tmp_path / "locks")})
    yield env
    for proc in env.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(autouse=True, scope="session")
def _private_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session locks live in a host-wide directory ($LA_LOCK_DIR); tests never use the real one."""
    previous = os.environ.get("LA_LOCK_DIR")
    os.environ["LA_LOCK_DIR"] = str(tmp_path_factory.mktemp("la-locks"))
    yield
    if previous is None:
        os.environ.pop("LA_LOCK_DIR", None)
    else:
        os.environ["LA_LOCK_DIR"] = previous


# --- mock exchange dialects (docs/bitunix-dialects.md) -------------------------------------------------
# A test marked ``dialects`` runs once per preset; every other test meets the default preset. Setting
# LA_MOCK_DIALECT runs everything against that one preset instead (a whole-suite run under one reading).


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mock_dialect" not in metafunc.fixturenames:
        return
    from laptop_agents.mock_exchange.dialects import env_dialect, preset_names

    forced = env_dialect()
    if forced is not None:
        presets = [forced]
    elif metafunc.definition.get_closest_marker("dialects") is not None:
        presets = list(preset_names())
    else:
        return
    metafunc.parametrize("mock_dialect", presets, indirect=True, ids=[f"dialect-{p}" for p in presets])


@pytest.fixture(autouse=True)
def mock_dialect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The preset mock exchanges started by this test speak (through LA_MOCK_DIALECT); None = default."""
    name: str | None = getattr(request, "param", None)
    if name is not None:
        monkeypatch.setenv("LA_MOCK_DIALECT", name)
    return name
