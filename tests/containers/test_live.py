"""The image's `live` role against the mock exchange: refused without a signed opt-in; with encrypted credentials
and a signed opt-in mounted as Docker secrets (/run/secrets/<name>, as compose mounts file secrets) and a passed
`la live preflight` on its volume it trades,
and `docker stop` leaves the mock account flat."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tests.containers.conftest import (
    IMAGE_UID,
    LABEL,
    MEASUREMENTS,
    SESSION,
    Engine,
    docker,
    free_port,
    http_get,
    la_container,
    metrics_when,
    wait_until,
)

pytestmark = pytest.mark.docker

LIVE_VOLUME = "/var/lib/laptop-agents/live"
SECRETS = "/run/secrets"
PUBKEY_RE = re.compile(r"ed25519:[A-Za-z0-9+/]{43}=")
STOP_TIMEOUT_S = 30


@dataclass
class LiveKit:
    """A mock exchange and everything the live role needs: operator key, encrypted credentials, signed opt-in."""

    mx_port: int
    env: dict[str, str]          # the live container's settings (the opt-in binds their effective config)
    passphrase: Path
    credentials: Path
    optin: Path

    def account(self) -> dict[str, Any]:
        code, body = http_get(f"http://127.0.0.1:{self.mx_port}/admin/state")
        assert code == 200, body
        return json.loads(body)["accounts"]["testkey"]

    def secrets(self, optin: bool = True) -> dict[str, str]:
        mounts = {str(self.passphrase): f"{SECRETS}/la_passphrase:ro",
                  str(self.credentials): f"{SECRETS}/bitunix_credentials:ro"}
        if optin:
            mounts[str(self.optin)] = f"{SECRETS}/live_optin:ro"
        return mounts


def _own(path: Path) -> None:
    """Docker secrets from files keep the host's owner and mode: make them the image user's, mode 0600."""
    try:
        os.chown(path, IMAGE_UID, IMAGE_UID)
        path.chmod(0o600)
    except PermissionError:
        path.chmod(0o644)


def _la_host(*args: str) -> str:
    """`la` on the host (the operator's machine), e.g. keygen and signing with the private key."""
    result = subprocess.run([sys.executable, "-m", "laptop_agents", *args], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _la_image(engine: Engine, env: dict[str, str], mounts: dict[str, str], *args: str, stdin: str = "") -> str:
    """`la` in the image with the live container's settings (so an opt-in binds the same effective config)."""
    cmd = ["run", "--rm", "-i", "--network", "host", "--label", f"{LABEL}={SESSION}"]
    for key, value in env.items():
        cmd += ["-e", f"{key}={value}"]
    for source, target in mounts.items():
        cmd += ["-v", f"{source}:{target}"]
    result = subprocess.run(["docker", *cmd, engine.image, "la", *args], input=stdin, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def live_kit(engine: Engine) -> Iterator[LiveKit]:
    mx_port = free_port()
    mx = la_container(engine.image, "mock-exchange", "--port", str(mx_port), "--seed", "5",
                      "--start-time", "2026-01-01T00:00:00Z", "--time-scale", "600", "--push-interval-ms", "50")
    mx.waiting_for(LogMessageWaitStrategy(f"mock-exchange listening on http://127.0.0.1:{mx_port}")
                   .with_startup_timeout(30))
    work = engine.shared_dir(writable=True)
    operator_key = engine.shared_dir(writable=False) / "operator.key"
    pubkey = PUBKEY_RE.search(_la_host("live", "optin", "keygen", "--key", str(operator_key)))
    assert pubkey, "keygen printed no public key"
    env = {
        "LA_BITUNIX__REST_URL": f"http://127.0.0.1:{mx_port}",
        "LA_BITUNIX__WS_URL": f"ws://127.0.0.1:{mx_port}/public/",
        "LA_BITUNIX__PRIVATE_WS_URL": f"ws://127.0.0.1:{mx_port}/private/",
        "LA_LIVE__OPTIN_PUBLIC_KEY": pubkey.group(0),
        "LA_LIVE__OPTIN_FILE": f"{SECRETS}/live_optin",
        "LA_LIVE__CREDENTIALS_FILE": f"{SECRETS}/bitunix_credentials",
    }
    passphrase = work / "la_passphrase"
    passphrase.write_text("correct horse battery staple\n")
    _own(passphrase)
    with mx:
        # the mock exchange's default account; the plaintext exists only on the pipe into `la secrets encrypt`
        _la_image(engine, env, {str(passphrase): f"{SECRETS}/la_passphrase:ro", str(work): "/out"},
                  "secrets", "encrypt", "--stdin", "--out", "/out/bitunix.credentials.enc",
                  stdin="BITUNIX_API_KEY=testkey\nBITUNIX_SECRET_KEY=testsecret\n")
        credentials = work / "bitunix.credentials.enc"
        _la_image(engine, env, {str(credentials): f"{SECRETS}/bitunix_credentials:ro", str(work): "/out"},
                  "live", "optin", "create", "--out", "/out/live_optin.json", "--config-dir", "/etc/laptop-agents",
                  "--credentials", f"{SECRETS}/bitunix_credentials", "--valid-days", "1", "--note", "container test")
        optin = work / "live_optin.json"
        _la_host("live", "optin", "sign", "--in", str(optin), "--key", str(operator_key))
        _own(optin)
        yield LiveKit(mx_port, env, passphrase, credentials, optin)


def test_live_container_without_optin_refuses_with_a_clear_message(engine: Engine, live_kit: LiveKit) -> None:
    before = live_kit.account()
    live = la_container(engine.image, "live", env={**live_kit.env, "LA_HTTP_PORT": str(free_port())},
                        mounts={engine.volume(): LIVE_VOLUME, **live_kit.secrets(optin=False)})
    with live:
        wrapped = live.get_wrapped_container()
        code = wrapped.wait(timeout=60)["StatusCode"]
        logs = b"".join(live.get_logs()).decode()
        assert code == 2, logs
        assert "live trading refused" in logs and "opt-in" in logs, logs
    after = live_kit.account()
    assert after["tradeCount"] == before["tradeCount"] and after["positions"] == [] and after["openOrders"] == []


def test_live_container_with_secrets_trades_and_leaves_the_account_flat(engine: Engine, live_kit: LiveKit) -> None:
    port = free_port()
    volume = engine.volume()
    # the live role refuses until `la live preflight` passed for this account and config: the operator's first
    # step, run in the image on the live volume against the same (mock) exchange
    out = _la_image(engine, live_kit.env, {volume: LIVE_VOLUME, **live_kit.secrets()}, "live", "preflight",
                    "--yes-place-a-real-order", "--config-dir", "/etc/laptop-agents", "--workspace", LIVE_VOLUME)
    assert "preflight PASSED" in out, out
    before = live_kit.account()
    live = la_container(engine.image, "live", env={**live_kit.env, "LA_HTTP_PORT": str(port)},
                        mounts={volume: LIVE_VOLUME, **live_kit.secrets()}, health_interval_s=0.5)
    with live:
        wait_until(lambda: metrics_when(port, laptop_agents_orders_filled_total=2), 90, "two filled live orders")
        code, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and 'laptop_agents_orders_filled_total{mode="live"' in body.decode()
        assert live_kit.account()["tradeCount"] > before["tradeCount"]    # the orders reached the exchange

        started = time.monotonic()
        docker("stop", "--time", str(STOP_TIMEOUT_S), live.get_container_id(), timeout=STOP_TIMEOUT_S + 30)
        MEASUREMENTS["docker stop of a live container -> exited (account flattened)"] = \
            f"{time.monotonic() - started:.1f} s"
        wrapped = live.get_wrapped_container()
        wrapped.reload()
        assert wrapped.attrs["State"]["ExitCode"] == 0, b"".join(live.get_logs()).decode()[-3000:]
        account = live_kit.account()
        assert account["positions"] == [] and account["openOrders"] == []
        logs = b"".join(live.get_logs()).decode()
        assert "LIVE TRADING" in logs and "(exit 0)" in logs
        assert f"artifacts {LIVE_VOLUME}/runs/" in logs                     # on the live volume, not paper's
        assert "testsecret" not in logs and "correct horse" not in logs     # no secret in the logs
