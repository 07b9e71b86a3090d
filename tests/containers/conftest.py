"""Container tests: the image built from this repository, run by a real Docker engine.

Every container uses host networking and listens on 127.0.0.1 at ports picked free for the test (the
machines these tests run on have no bridge network and no image registry). Without a reachable engine the
tests skip with the reason; with CI=true they fail instead. Start an engine here with
`bash ../shared/ci/container-engine.sh up` and export what it prints (DOCKER_CONFIG, TESTCONTAINERS_RYUK_DISABLED).

Everything a test creates carries the label `laptop-agents.tests=<session id>` and is removed at the end
(containers with their anonymous volumes, named volumes, bind directories); the image `laptop-agents:test` is
kept so the next run builds from cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("LA_TEST_IMAGE", "laptop-agents:test")
SESSION = uuid.uuid4().hex[:10]
LABEL = "laptop-agents.tests"
LABELS = {LABEL: SESSION}
IMAGE_UID = 10001                      # the image's non-root user (Dockerfile)
PAPER_VOLUME = "/var/lib/laptop-agents/paper"
CONFIG_DIR = "/etc/laptop-agents"
MEASUREMENTS: dict[str, str] = {}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """A missing tool skips locally; in CI (CI=true) it is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker(*args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=cwd, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def metrics_when(port: int, **minimums: float) -> dict[str, float] | None:
    """The metrics if every `name=minimum` is reached (e.g. laptop_agents_candles_processed_total=60), else None."""
    values = metrics(port)
    return values if all(values.get(name, 0.0) >= low for name, low in minimums.items()) else None


def metrics(port: int) -> dict[str, float]:
    """`name{labels}` -> value, summed over labels per metric name, from a Prometheus text page."""
    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    out: dict[str, float] = {}
    if code != 200:
        return out
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


def read_file(container: Any, path: str) -> bytes | None:
    """A file's bytes from a container (running or stopped; `docker cp`'s API), or None if it does not exist."""
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        if member is not None and member.issym():
            raise AssertionError(f"{path} is a symlink to {member.linkname}: read the target")
        extracted = tar.extractfile(member) if member is not None else None
        return extracted.read() if extracted is not None else None


def jsonl(data: bytes | None) -> list[dict[str, Any]]:
    """JSON lines; numbers with a fraction as Decimal, exactly as written."""
    return [json.loads(line, parse_float=Decimal) for line in (data or b"").decode().splitlines() if line.strip()]


@dataclass
class Engine:
    """The Docker engine, the image under test, and what this session created on it."""

    client: Any
    image: str
    volumes: list[str] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    def volume(self) -> str:
        name = f"la-test-{SESSION}-{len(self.volumes)}"
        self.client.volumes.create(name, labels=LABELS)
        self.volumes.append(name)
        return name

    def shared_dir(self, writable: bool) -> Path:
        """A host directory the image's user can read (and, if `writable`, write): outside pytest's 0700 tmp."""
        path = Path(tempfile.mkdtemp(prefix="la-ct-", dir="/tmp"))
        path.chmod(0o755)
        if writable:
            try:
                os.chown(path, IMAGE_UID, IMAGE_UID)
            except PermissionError:
                path.chmod(0o777)
        self.dirs.append(path)
        return path

    def config_dir(self, **strategy_changes: Any) -> Path:
        """A copy of config/ (read-only for the container), with changes to strategies/default.json."""
        path = self.shared_dir(writable=False) / "config"
        shutil.copytree(REPO / "config", path)
        if strategy_changes:
            strategy = path / "strategies" / "default.json"
            data = json.loads(strategy.read_text())
            for key, value in strategy_changes.items():
                data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
            strategy.write_text(json.dumps(data, indent=2))
        for p in [path, *path.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        return path

    def cleanup(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={SESSION}"}):
            c.remove(force=True, v=True)
        import docker.errors

        for name in self.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


def _client() -> Any:
    if shutil.which("docker") is None:
        skip_or_fail("no docker CLI on PATH (start an engine: bash ../shared/ci/container-engine.sh up)")
    try:
        import docker
    except ImportError:
        skip_or_fail("the docker Python SDK is not installed (pip install -e '.[dev]')")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        skip_or_fail(f"no Docker engine reachable ({type(exc).__name__}: {exc}); "
                     "start one with `bash ../shared/ci/container-engine.sh up` and export what it prints")
    if os.environ.get("TESTCONTAINERS_RYUK_DISABLED", "").lower() != "true":
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"   # the reaper image cannot be pulled here
    return client


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The image built from this repository (once per session), on a reachable engine."""
    client = _client()
    started = time.monotonic()
    docker("build", "--network", "host", "-t", IMAGE, str(REPO), timeout=900)
    MEASUREMENTS["docker build (incl. layer cache)"] = f"{time.monotonic() - started:.1f} s"
    size = client.images.get(IMAGE).attrs["Size"]
    MEASUREMENTS["image size"] = f"{size / 1e6:.0f} MB"
    eng = Engine(client, IMAGE)
    try:
        yield eng
    finally:
        eng.cleanup()


def la_container(image: str, *command: str, env: dict[str, str] | None = None,
                 mounts: dict[str, str] | None = None, health_interval_s: float | None = None) -> Any:
    """A testcontainers container of the image on host networking, labelled for cleanup.

    `mounts`: source (host directory or volume name) -> path in the container (read-only if it ends in ":ro").
    `health_interval_s`: run the image's own healthcheck at this interval instead of every 10 s.
    """
    from testcontainers.core.container import DockerContainer

    # as compose.yaml runs it: read-only root filesystem, no capabilities, no privilege escalation
    run: dict[str, Any] = {"network_mode": "host", "labels": LABELS, "read_only": True,
                           "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
    if health_interval_s is not None:
        ns = int(health_interval_s * 1e9)
        run["healthcheck"] = {"test": ["CMD", "la-healthcheck"], "interval": ns, "timeout": 3_000_000_000,
                              "retries": 3, "start_period": 90_000_000_000}
    container = DockerContainer(image).with_kwargs(**run).with_tmpfs_mount("/tmp")
    if command:
        container.with_command(list(command))
    for key, value in (env or {}).items():
        container.with_env(key, value)
    for source, target in (mounts or {}).items():
        path, _, mode = target.partition(":")
        container.with_volume_mapping(source, path, mode or "rw")
    return container


def health(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASUREMENTS:
        terminalreporter.section("container measurements")
        for key, value in MEASUREMENTS.items():
            terminalreporter.write_line(f"{key}: {value}")
