"""A real systemd as PID 1 for tests: a debootstrapped Debian booted with `systemd-nspawn -b`.

Recipe: ../shared/reference/systemd-nspawn.md. The host has no systemd or D-Bus, hence `--keep-unit
--register=no`, and we enter the container with `nsenter` (no machinectl). The container shares the host's
network namespace, so its services listen on the host's 127.0.0.1 (tests give them free ports).

Cost control, on one machine:
  * the rootfs is debootstrapped once and cached under $LA_NSPAWN_CACHE (default
    /var/cache/laptop-agents-test), keyed by suite + package list; each boot is `--ephemeral` (a throw-away copy);
  * the Python dependencies are a wheelhouse built on the host (`pip wheel`, host network and pip.conf), cached
    under the same directory keyed by the dependency list, so `pip install` inside needs no network.
Builds take an flock so concurrent test runs never build the same entry twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("systemd", "dbus", "python3", "python3-venv", "ca-certificates")
MIRROR = os.environ.get("LA_NSPAWN_MIRROR", "http://deb.debian.org/debian")
ENV_CACHE = "LA_NSPAWN_CACHE"
DEFAULT_CACHE = Path("/var/cache/laptop-agents-test")
PATH_IN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    path = Path(os.environ.get(ENV_CACHE) or DEFAULT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def rootfs(timeout: float = 900) -> tuple[Path, bool]:
    """The cached debootstrapped rootfs (built if missing); (path, built now)."""
    cache = cache_dir()
    target = cache / f"rootfs-{SUITE}-{_key(SUITE, MIRROR, *PACKAGES)}"
    with _locked(cache / ".rootfs.lock"):
        if (target / ".complete").exists():
            return target, False
        work = cache / f".building-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(work),
                            MIRROR], check=True, capture_output=True, timeout=timeout)
            # no getty/resolved noise; the machine only runs our unit
            (work / "etc/hostname").write_text("la-test\n")
            (work / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return target, True


def wheelhouse(repo: Path, timeout: float = 900) -> tuple[Path, bool]:
    """Wheels of the project's dependencies (+ setuptools/wheel to build it), built on the host; (path, built now)."""
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    build = ["setuptools>=68", "wheel"]
    cache = cache_dir()
    target = cache / f"wheels-py{sys.version_info.major}{sys.version_info.minor}-{_key(*deps, *build)}"
    with _locked(cache / ".wheels.lock"):
        if (target / ".complete").exists():
            return target, False
        work = cache / f".wheels-{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(work), *deps, *build],
                           check=True, capture_output=True, timeout=timeout)
            (work / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return target, True


@dataclass
class Machine:
    """A booted container: its nspawn process and the pid of its systemd (the leader)."""

    proc: subprocess.Popen[bytes]
    leader: int
    name: str
    log: Path

    def run(self, *cmd: str, timeout: float = 120, check: bool = False, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, as root, with a clean environment."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C",
                               "env", "-i", f"PATH={PATH_IN}", "LANG=C.UTF-8", *extra, *cmd],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def sh(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-c", script, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _leader(nspawn_pid: int) -> int | None:
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@contextlib.contextmanager
def booted(root: Path, binds_ro: dict[Path, str], workdir: Path, boot_timeout: float = 60) -> Iterator[Machine]:
    """Boot `root` ephemerally (a throw-away copy) under systemd-nspawn; always powered off on exit."""
    name = f"la-test-{uuid.uuid4().hex[:8]}"
    log = workdir / "nspawn.log"
    args = ["systemd-nspawn", "--keep-unit", "--register=no", "--ephemeral", "--quiet", "-b", "-D", str(root),
            f"--machine={name}", "--console=passive"]
    args += [f"--bind-ro={src}:{dst}" for src, dst in binds_ro.items()]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    machine: Machine | None = None
    try:
        deadline = time.monotonic() + boot_timeout
        leader = None
        while time.monotonic() < deadline and proc.poll() is None:
            leader = _leader(proc.pid)
            if leader is not None:
                candidate = Machine(proc, leader, name, log)
                state = candidate.run("systemctl", "is-system-running", timeout=10).stdout.strip()
                if state in ("running", "degraded"):
                    machine = candidate
                    break
            time.sleep(0.2)
        if machine is None:
            raise AssertionError(f"the container did not boot within {boot_timeout}s (nspawn exit {proc.poll()}): "
                                 f"{log.read_text(errors='replace')[-2000:]}")
        yield machine
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # nspawn → a clean poweroff of the container
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
