"""compose.yaml and compose.host.yaml: valid, and the offline paper stack comes up healthy and writes artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.containers.conftest import (
    MEASUREMENTS,
    PAPER_VOLUME,
    REPO,
    SESSION,
    Engine,
    docker,
    free_port,
    http_get,
    jsonl,
    metrics_when,
    read_file,
    skip_or_fail,
    wait_until,
)

pytestmark = pytest.mark.docker

FILES = {"default": ["compose.yaml"], "host": ["compose.yaml", "compose.host.yaml"]}
PROFILES = ["offline", "live", "monitoring"]


def compose_env(**extra: str) -> dict[str, str]:
    """The caller's environment without LA_* settings (compose interpolates some), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LA_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compose_cli() -> None:
    if shutil.which("docker") is None:
        skip_or_fail("no docker CLI on PATH (bash ../shared/ci/container-engine.sh up installs it)")
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0:
        skip_or_fail("no `docker compose` v2 plugin (bash ../shared/ci/container-engine.sh up installs it; "
                     "export its DOCKER_CONFIG)")


@pytest.mark.parametrize("variant", sorted(FILES))
def test_compose_config_is_valid(compose_cli: None, variant: str) -> None:
    files = [arg for f in FILES[variant] for arg in ("-f", f)]
    profiles = [arg for p in PROFILES for arg in ("--profile", p)]
    docker("compose", *files, "config", "-q", cwd=REPO, env=compose_env())
    rendered = docker("compose", *files, *profiles, "config", "--format", "json", cwd=REPO, env=compose_env()).stdout
    services = json.loads(rendered)["services"]
    assert set(services) == {"paper", "mock-exchange", "paper-offline", "live", "prometheus", "grafana"}
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        if variant == "host":
            assert svc.get("network_mode") == "host" and not svc.get("networks") and not svc.get("ports"), name
        else:
            for port in svc.get("ports", []):
                assert port["host_ip"] == "127.0.0.1", f"{name} publishes beyond loopback: {port}"
    assert services["paper"]["environment"]["LA_SOURCE"] == "bitunix"
    assert services["paper-offline"]["depends_on"]["mock-exchange"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert {s["source"] for s in services["live"]["secrets"]} == {"la_passphrase", "bitunix_credentials", "live_optin"}
    volumes = {svc: {v["target"]: v.get("source") for v in services[svc]["volumes"]}
               for svc in ("paper", "paper-offline", "live")}
    assert len({volumes["paper"][PAPER_VOLUME], volumes["paper-offline"][PAPER_VOLUME],
                volumes["live"]["/var/lib/laptop-agents/live"]}) == 3, "paper, offline and live share no state"
    # the monitoring profile scrapes every started laptop-agents service: each registers its endpoint on the
    # shared volume that Prometheus reads (docker/prometheus/prometheus.yml), paper-offline's port included
    targets = {svc: volumes[svc].get("/var/lib/laptop-agents/targets") for svc in ("paper", "paper-offline", "live")}
    prom_volumes = {v["target"]: v.get("source") for v in services["prometheus"]["volumes"]}
    assert len(set(targets.values())) == 1 and None not in targets.values(), targets
    assert prom_volumes["/etc/prometheus/targets"] == targets["paper"]
    scrape = {svc: services[svc]["environment"]["LA_SCRAPE_TARGET"] for svc in targets}
    port = {"paper": "9478", "paper-offline": "9480", "live": "9479"}
    for svc, target in scrape.items():
        assert services[svc]["environment"]["LA_SCRAPE_NAME"] == svc
        if variant == "host":
            assert target == f"127.0.0.1:{port[svc]}", (svc, target)
        else:
            assert target == {"paper": "paper:9478", "paper-offline": "mock-exchange:9478", "live": "live:9479"}[svc]
    for svc in ("paper", "paper-offline", "live"):
        assert services[svc]["healthcheck"]["test"] == ["CMD", "la-healthcheck", "ready"], "health = readiness"


@pytest.fixture
def offline_stack(engine: Engine, compose_cli: None) -> Iterator[tuple[list[str], dict[str, str], int]]:
    repo_name, _, tag = engine.image.partition(":")
    assert repo_name == "laptop-agents", "compose.yaml names the image laptop-agents:$LA_IMAGE_TAG"
    http_port = free_port()
    env = compose_env(LA_IMAGE_TAG=tag or "latest", MOCK_EXCHANGE_PORT=str(free_port()),
                      PAPER_OFFLINE_HTTP_PORT=str(http_port), MOCK_TIME_SCALE="600", MOCK_PUSH_INTERVAL_MS="50")
    base = ["compose", "-f", "compose.yaml", "-f", "compose.host.yaml", "-p", f"la-test-{SESSION}",
            "--profile", "offline"]
    try:
        yield base, env, http_port
    finally:
        docker(*base, "down", "--volumes", "--remove-orphans", "--timeout", "30", cwd=REPO, env=env, check=False)


def test_compose_offline_paper_is_healthy_and_writes_artifacts(
        engine: Engine, offline_stack: tuple[list[str], dict[str, str], int]) -> None:
    base, env, http_port = offline_stack
    started = time.monotonic()
    docker(*base, "up", "--detach", "--wait", "--wait-timeout", "120", "paper-offline", cwd=REPO, env=env,
           timeout=180)
    MEASUREMENTS["docker compose up --wait paper-offline -> healthy (10 s health interval)"] = \
        f"{time.monotonic() - started:.1f} s"

    ids = {name: docker(*base, "ps", "--all", "-q", name, cwd=REPO, env=env).stdout.strip()
           for name in ("mock-exchange", "paper-offline")}
    containers = {name: engine.client.containers.get(cid) for name, cid in ids.items()}
    for c in containers.values():
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        assert c.attrs["State"]["Health"]["Status"] == "healthy"
    project_networks = engine.client.networks.list(filters={"label": f"com.docker.compose.project=la-test-{SESSION}"})
    assert project_networks == [], "host networking only: compose must not create a bridge network here"

    registered = json.loads(read_file(containers["paper-offline"], "/var/lib/laptop-agents/targets/paper-offline.json")
                            or b"[]")
    assert registered == [{"targets": [f"127.0.0.1:{http_port}"], "labels": {"service": "paper-offline"}}]
    m = wait_until(lambda: metrics_when(http_port, laptop_agents_candles_processed_total=20), 60,
                   "20 candles in /metrics")
    assert m["laptop_agents_candles_processed_total"] >= 20
    code, body = http_get(f"http://127.0.0.1:{http_port}/status")
    assert code == 200
    run_id = json.loads(body)["run_id"]

    docker(*base, "stop", "--timeout", "30", "paper-offline", cwd=REPO, env=env, timeout=60)
    paper = containers["paper-offline"]
    paper.reload()
    assert paper.attrs["State"]["ExitCode"] == 0
    run = f"{PAPER_VOLUME}/runs/{run_id}"
    events = jsonl(read_file(paper, f"{run}/events.jsonl"))
    assert events[0]["event"] == "SessionStart" and events[0]["source"] == "bitunix"
    assert sum(e["event"] == "CandleProcessed" for e in events) >= 20
    assert events[-1]["event"] == "SessionEnd" and events[-1]["stopped_reason"] == "sigterm"
    summary = json.loads(read_file(paper, f"{run}/summary.json") or b"{}")
    assert summary["accounting_ok"] is True
    for artifact in ("trades.csv", "summary.html", "system.jsonl", "config_snapshot.json"):
        assert read_file(paper, f"{run}/{artifact}") is not None, artifact
    assert read_file(paper, f"{PAPER_VOLUME}/paper/async_session.lock") is None

