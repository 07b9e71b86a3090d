"""Helpers for service tests: `la serve` as a subprocess, its endpoint, a systemd notify socket."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LaEnv

FAST = ["--source", "mock", "--candle-interval", "0.01"]
ENDPOINT_RE = re.compile(r"la (?:serve: endpoint|run: dashboard) (http://127\.0\.0\.1:\d+)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """A missing tool skips locally; in CI (CI=true) it is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Served:
    """A running `la serve` and the URL of its endpoint."""

    proc: subprocess.Popen[str]
    url: str
    stdout_lines: list[str] = field(default_factory=list)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def json(self, path: str) -> tuple[int, dict[str, Any]]:
        code, body = self.get(path)
        return code, json.loads(body)

    def status(self) -> dict[str, Any]:
        return self.json("/status")[1]


def start_serve(la_env: LaEnv, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 20,
                source: str = "mock") -> Served:
    """Start `la serve --http-port 0` (fast mock data unless `source` says otherwise); read the bound URL."""
    data = FAST if source == "mock" else []
    return start_la(la_env, "serve", "--http-port", "0", *data, *args, extra_env=extra_env, timeout=timeout)


def start_la(la_env: LaEnv, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 20) -> Served:
    """Start `la ...` that prints its endpoint URL, and wait until the endpoint answers /healthz."""
    proc = la_env.start(*args, extra_env=extra_env)
    assert proc.stdout is not None
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = ENDPOINT_RE.search(line)
            if m and not url:
                url.append(m.group(1))
                found.set()

    threading.Thread(target=reader, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"la serve printed no endpoint within {timeout}s; stderr: {err[-2000:]}")
    served = Served(proc, url[0], lines)
    # the socket listens from the start; it answers once the session runs (signal handlers installed)
    wait_until(lambda: proc.poll() is not None or served.get("/healthz")[0] == 200, timeout, "/healthz 200")
    return served


class NotifyListener:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET; records (monotonic time, message)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="la-notify-", dir="/tmp"))  # short: AF_UNIX paths max 108 bytes
        self.path = self.dir / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.messages) if m.startswith(prefix)]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 20) -> list[tuple[float, str]]:
        return wait_until(lambda: len(self.lines(prefix)) >= count and self.lines(prefix), timeout,
                          f"{count} x {prefix!r} on NOTIFY_SOCKET (got {[m for _, m in self.messages][-10:]})")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()
