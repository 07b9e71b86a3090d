"""ops/: install (staged), backup and restore of state, and a runbook entry for every alert."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO, LaEnv
from tests.service.conftest import start_serve

OPS = REPO / "ops"


def sh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=False, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (OPS / "RUNBOOK.md").read_text()
    sections = {re.sub(r"[^a-z0-9]", "", h.lower()) for h in re.findall(r"^### (.+)$", runbook, re.MULTILINE)}
    for group in yaml.safe_load((OPS / "prometheus/rules/laptop-agents.rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor == rule["alert"].lower() and anchor in sections, rule["alert"]


def test_scripts_are_valid_bash() -> None:
    for name in ("install", "backup", "restore"):
        path = OPS / name
        assert path.stat().st_mode & stat.S_IXUSR, f"{name} is executable"
        assert sh("bash", "-n", str(path)).returncode == 0


def test_install_stages_layout(tmp_path: Path) -> None:
    dest = tmp_path / "stage"
    result = sh(str(OPS / "install"), "--destdir", str(dest), "--no-venv", "--no-systemctl", "--with-live")
    assert result.returncode == 0, result.stderr
    etc = dest / "etc/laptop-agents"
    for rel in ("strategies/default.json", "risk.yaml", "settings.yaml"):
        assert (etc / rel).read_text() == (REPO / "config" / rel).read_text()
    creds = etc / "credentials"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    assert stat.S_IMODE((creds / "alert-urls").stat().st_mode) == 0o600
    for unit in ("laptop-agents.service", "laptop-agents-live.service"):
        assert (dest / "etc/systemd/system" / unit).read_text() == (REPO / "service" / unit).read_text()
    for env_file in ("laptop-agents.env", "laptop-agents-live.env"):
        assert (etc / env_file).read_text() == (OPS / env_file).read_text()
        assert stat.S_IMODE((etc / env_file).stat().st_mode) == 0o640
    code = dest / "opt/laptop-agents"
    assert (code / "src/laptop_agents/service/serve.py").is_file() and not (code / ".git").exists()
    assert "passphrase" in result.stdout
    # idempotent, and it never overwrites the operator's config or secrets
    (creds / "alert-urls").write_text("json://127.0.0.1:1/\n")
    (etc / "risk.yaml").write_text("# mine\n")
    (etc / "laptop-agents.env").write_text("LA_SOURCE=mock\n")
    again = sh(str(OPS / "install"), "--destdir", str(dest), "--no-venv", "--no-systemctl", "--no-start")
    assert again.returncode == 0, again.stderr
    assert (creds / "alert-urls").read_text() == "json://127.0.0.1:1/\n" and (etc / "risk.yaml").read_text() == "# mine\n"
    assert (etc / "laptop-agents.env").read_text() == "LA_SOURCE=mock\n"


def test_backup_and_restore_round_trip(la_env: LaEnv, tmp_path: Path) -> None:
    result = la_env.run("run", "--duration", "0.03", "--candle-interval", "0.01")
    assert result.returncode == 0, result.stderr
    state = la_env.workspace / "paper"
    before = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    out = tmp_path / "backups"
    made = sh(str(OPS / "backup"), "--workspace", str(la_env.workspace), "--mode", "paper", "--runs", "--out", str(out))
    assert made.returncode == 0, made.stderr
    archive = Path(made.stdout.strip())
    assert archive.is_file() and Path(f"{archive}.sha256").is_file()

    (state / "async_broker_state.json").write_text("garbage")
    restored = sh(str(OPS / "restore"), str(archive), "--workspace", str(la_env.workspace))
    assert restored.returncode == 0, restored.stderr
    after = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    assert after == before
    aside = [p for p in la_env.workspace.iterdir() if p.name.startswith("paper.before-restore-")]
    assert aside and (aside[0] / "async_broker_state.json").read_text() == "garbage", "nothing is deleted"
    doctor = la_env.run("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    # a damaged archive is refused
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    refused = sh(str(OPS / "restore"), str(archive), "--workspace", str(la_env.workspace))
    assert refused.returncode == 2 and "checksum" in refused.stderr


def test_restore_refuses_while_a_session_runs(la_env: LaEnv, tmp_path: Path) -> None:
    served = start_serve(la_env)
    made = sh(str(OPS / "backup"), "--workspace", str(la_env.workspace), "--out", str(tmp_path))
    assert made.returncode == 0, made.stderr
    refused = sh(str(OPS / "restore"), made.stdout.strip(), "--workspace", str(la_env.workspace))
    assert refused.returncode == 2 and "is running" in refused.stderr, refused.stderr
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    assert json.loads(la_env.run("status", "--json").stdout)["state"] == "STOPPED"


def test_scripts_pass_shellcheck() -> None:
    import shutil

    from tests.service.conftest import skip_or_fail

    if shutil.which("shellcheck") is None:
        skip_or_fail("shellcheck not installed (apt-get install shellcheck)")
    result = sh("shellcheck", *(str(OPS / n) for n in ("install", "backup", "restore")))
    assert result.returncode == 0, result.stdout + result.stderr
