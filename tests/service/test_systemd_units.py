"""The systemd units in service/: `systemd-analyze verify` clean (nothing on stderr) and hardened.

`verify` only warns on bad directives and still exits 0, so any stderr output
is a failure. The units name /opt/laptop-agents/.venv/bin/la, which does not
exist on a test machine: we verify inside a scratch --root holding the
system's own unit files, our units, and a stub executable at that path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.service.conftest import skip_or_fail

UNITS = sorted((REPO / "service").glob("*.service"))
SYSTEM_UNIT_DIRS = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        skip_or_fail("systemd-analyze not installed (apt-get install systemd)")
    return path  # type: ignore[return-value]


def _scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    system_dir = next((d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if system_dir is None:
        skip_or_fail("no systemd unit directory with sysinit.target on this machine")
    shutil.copytree(system_dir, root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, etc / unit.name)
        for exe in re.findall(r"^ExecStart=[-@:+!]*(\S+)", unit.read_text(), re.MULTILINE):
            stub = root / exe.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    return root


def test_units_exist() -> None:
    names = {u.name for u in UNITS}
    assert {"laptop-agents.service", "laptop-agents-live.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_contract(unit: Path) -> None:
    text = unit.read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))
    assert keys["Type"] == "notify" and keys["NotifyAccess"] == "main"
    assert int(keys["WatchdogSec"]) >= 60, "outer watchdog: longer than the inner one (30 s + flatten)"
    assert keys["Restart"] == "on-failure"
    assert "4" in keys["RestartPreventExitStatus"].split(), "never restart after the kill switch"
    assert int(keys["TimeoutStopSec"]) >= 60
    assert keys["StateDirectory"] in ("laptop-agents-paper", "laptop-agents-live")
    assert "LoadCredential" in keys and keys["CapabilityBoundingSet"] == ""
    for flag in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
        assert keys[flag] == "yes", flag
    assert keys["ProtectSystem"] == "strict"
    assert "@system-service" in re.findall(r"^SystemCallFilter=(.*)$", text, re.MULTILINE)
    assert "MemoryMax" in keys and "RestrictAddressFamilies" in keys


def test_source_and_options_come_from_the_environment_file() -> None:
    """No hard-coded `--source bitunix` in the paper unit: ops/install's env file chooses (LA_SOURCE, LA_SERVE_OPTS)."""
    paper = (REPO / "service/laptop-agents.service").read_text()
    start = re.search(r"^ExecStart=(.*)$", paper, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert start.endswith("la serve --source ${LA_SOURCE} $LA_SERVE_OPTS"), start
    assert "EnvironmentFile=-/etc/laptop-agents/laptop-agents.env" in paper
    assert "Environment=LA_SOURCE=bitunix" in paper  # the default when the file says nothing
    env = dict(line.split("=", 1) for line in (REPO / "ops/laptop-agents.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env == {"LA_SOURCE": "bitunix", "LA_SERVE_OPTS": ""}
    live = (REPO / "service/laptop-agents-live.service").read_text()
    assert "EnvironmentFile=-/etc/laptop-agents/laptop-agents-live.env" in live and "$LA_SERVE_OPTS" in live
    # the LSB names systemd prints for our exit codes are explained where an operator looks
    for text in (paper, (REPO / "ops/RUNBOOK.md").read_text()):
        assert "4/NOPERMISSION" in text and "6/NOTCONFIGURED" in text


def test_paper_and_live_never_share_state() -> None:
    def state(name: str) -> str:
        return re.search(r"^StateDirectory=(.*)$", (REPO / "service" / name).read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]

    assert state("laptop-agents.service") != state("laptop-agents-live.service")
    live = (REPO / "service/laptop-agents-live.service").read_text()
    assert "LoadCredential=la_passphrase:" in live


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = _analyze()
    root = _scratch_root(tmp_path)
    for unit in UNITS:
        result = subprocess.run([analyze, "verify", f"--root={root}", unit.name], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0 and result.stderr == "" and result.stdout == "", (unit.name, result.stderr)


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """Guard the guard: a misspelt directive must show up on stderr under the same procedure."""
    analyze = _analyze()
    root = _scratch_root(tmp_path)
    bad = root / "etc/systemd/system/typo.service"
    bad.write_text(UNITS[0].read_text().replace("NoNewPrivileges=", "NoNewPrivilegez="))
    result = subprocess.run([analyze, "verify", f"--root={root}", "typo.service"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert "NoNewPrivilegez" in result.stderr


def test_security_exposure_is_ok_or_better(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    analyze = _analyze()
    root = _scratch_root(tmp_path)
    for unit in UNITS:
        result = subprocess.run([analyze, "security", "--offline=true", f"--root={root}", "--no-pager", unit.name],
                                capture_output=True, text=True, timeout=60, check=False)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout + result.stderr)
        assert m, result.stdout[-500:] + result.stderr[-500:]
        score, verdict = float(m.group(1)), m.group(2)
        record_property(f"exposure[{unit.name}]", f"{score} {verdict}")
        print(f"{unit.name}: exposure {score} {verdict}")
        assert score <= 2.0 and verdict in ("OK", "SAFE"), (unit.name, score, verdict)
