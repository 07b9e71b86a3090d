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
# Every test under tests/live and tests/chaos, and any other test marked ``dialects``, runs once per preset (issue
# 14: the live suite under every dialect in CI); ``single_dialect`` opts a test there out (it must say why: it never
# reaches a mock exchange, or nothing a dialect decides can change its outcome). Every other test meets the default
# preset. Setting LA_MOCK_DIALECT runs everything against that one preset instead (a whole-suite run under one
# reading). The parameter is module-scoped, so a module runs all its tests under one preset before the next one: a
# module-scoped mock exchange (tests/chaos) is started once per preset, not once per test.

DIALECT_DIRS = ("live", "chaos")
"""Directories under tests/ whose every test runs under every preset."""


def runs_per_dialect(definition: pytest.Item) -> bool:
    """Whether this test runs once per preset (see above)."""
    if definition.get_closest_marker("single_dialect") is not None:
        return False
    if definition.get_closest_marker("dialects") is not None:
        return True
    parts = Path(str(definition.path)).resolve().relative_to(REPO / "tests").parts
    return len(parts) > 1 and parts[0] in DIALECT_DIRS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mock_dialect" not in metafunc.fixturenames:
        return
    from laptop_agents.mock_exchange.dialects import env_dialect, preset_names

    forced = env_dialect()
    if forced is not None:
        presets = [forced]
    elif runs_per_dialect(metafunc.definition):
        presets = list(preset_names())
    else:
        return
    metafunc.parametrize("mock_dialect", presets, indirect=True, ids=[f"dialect-{p}" for p in presets],
                         scope="module")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's hook reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests parametrized per preset carry the ``dialects`` marker (``-m dialects`` selects them all).

    For ``make test``'s parallel phase (``--dist loadgroup --no-loadscope-reorder``) every test gets an
    ``xdist_group``: its module, and for per-preset tests its module and preset, so a module's fixtures (a
    module-scoped mock exchange) stay on one worker while its four presets can run on four. Groups holding slow
    tests go first, so the longest units start at once instead of holding up the end of the run (stable sort)."""
    groups: dict[int, str] = {}
    slow_groups: set[str] = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        preset = callspec.params.get("mock_dialect") if callspec is not None else None
        if preset is not None and item.get_closest_marker("dialects") is None:
            item.add_marker(pytest.mark.dialects)
        group = item.nodeid.split("::", 1)[0] + (f"::{preset}" if preset is not None else "")
        item.add_marker(pytest.mark.xdist_group(group))
        groups[id(item)] = group
        if item.get_closest_marker("slow") is not None:
            slow_groups.add(group)
    items.sort(key=lambda item: groups[id(item)] not in slow_groups)


@pytest.fixture(scope="module")
def mock_dialect(request: pytest.FixtureRequest) -> str | None:
    """The preset mock exchanges started by this test speak; None = the default (or LA_MOCK_DIALECT's)."""
    name: str | None = getattr(request, "param", None)
    return name


@pytest.fixture(autouse=True)
def _mock_dialect_env(mock_dialect: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mock exchanges started during this test speak its preset (LA_MOCK_DIALECT, read when one starts)."""
    if mock_dialect is not None:
        monkeypatch.setenv("LA_MOCK_DIALECT", mock_dialect)
