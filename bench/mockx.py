"""The mock exchange as a subprocess on 127.0.0.1, and a scratch install set up for `la run --live` against it.

A subprocess rather than `running_mock_exchange` (a thread): the exchange then never holds the GIL of the
process being measured. The live set-up mirrors tests/live/test_live_session_e2e.py::setup_live (bench must not
import from tests/): encrypted credentials, a pinned operator key, exchange URLs in settings.yaml, a signed opt-in.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import yaml

from laptop_agents.mock_exchange.testing import AdminClient

KEY, SECRET = "testkey", "testsecret"


class MockExchangeProcess:
    """`python -m laptop_agents.mock_exchange` on a free port; a context manager."""

    def __init__(self, *args: str) -> None:
        self.args = ["--port", "0", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.rest_url = ""

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, "-m", "laptop_agents.mock_exchange", *self.args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            _out, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"mock exchange did not start: {line!r} {err[-2000:]}")
        self.rest_url = line.split("listening on ", 1)[1].strip().rstrip("/")
        self.admin = AdminClient(self.rest_url)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    @property
    def public_ws_url(self) -> str:
        return self.rest_url.replace("http://", "ws://", 1) + "/public/"

    @property
    def private_ws_url(self) -> str:
        return self.rest_url.replace("http://", "ws://", 1) + "/private/"

    def account(self, key: str = KEY) -> dict[str, Any]:
        return self.admin.account(key)

    def is_flat(self, key: str = KEY) -> bool:
        account = self.account(key)
        return account["positions"] == [] and account["openOrders"] == []


def _deep_update(data: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _deep_update(data[key], value)
        else:
            data[key] = value


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    _deep_update(data, changes)
    path.write_text(json.dumps(data, indent=2))


def edit_yaml(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    _deep_update(data, changes)
    path.write_text(yaml.safe_dump(data))


def setup_live(root: Path, mx: MockExchangeProcess) -> dict[str, str]:
    """Credentials, operator key, URLs and a signed opt-in under ``root``; returns the env additions.

    Edit the strategy/risk config *before* calling this: the opt-in binds the config hash.
    """
    from laptop_agents.config_loader import load_config
    from laptop_agents.security.credentials import Credentials
    from laptop_agents.security.credentials_file import (
        ScryptParams,
        api_key_fingerprint,
        write_credentials_file,
    )
    from laptop_agents.security.optin import (
        build_payload,
        generate_operator_key,
        load_private_key,
        sign_payload,
        write_document,
    )
    from laptop_agents.security.passphrase import PassphraseSource

    secrets_dir = root / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    passphrase = secrets_dir / "passphrase"
    passphrase.write_text("bench operator passphrase\n")
    source = PassphraseSource(env={"LA_PASSPHRASE_FILE": str(passphrase)}, docker_dir=secrets_dir / "no-docker")
    creds = secrets_dir / "bitunix.credentials.enc"
    write_credentials_file(creds, Credentials(KEY, SECRET), source.read(), params=ScryptParams(n=2**10))
    key_path = secrets_dir / "operator.key"
    pubkey = generate_operator_key(key_path)
    optin = root / "live_optin.json"
    config_dir = root / "config"
    edit_yaml(config_dir / "settings.yaml",
              bitunix={"rest_url": mx.rest_url, "ws_url": mx.public_ws_url, "private_ws_url": mx.private_ws_url},
              live={"optin_public_key": pubkey, "optin_file": str(optin), "credentials_file": str(creds)})
    config = load_config(config_dir, env={})
    payload = build_payload(config, api_key_fingerprint(KEY), now=datetime.now(UTC))
    write_document(optin, sign_payload(payload, load_private_key(key_path)))
    _record_passed_preflight(root / ".workspace" / "live", config)
    return {"LA_PASSPHRASE_FILE": str(passphrase)}


def _record_passed_preflight(state_dir: Path, config: Any) -> None:
    """The live gate requires a passed `la live preflight`; written and sealed as the command writes it (no round
    trip: the benches measure their own orders on the ledger)."""
    from laptop_agents.execution.preflight import PREFLIGHT_STEPS, PreflightReport
    from laptop_agents.security.credentials_file import api_key_fingerprint
    from laptop_agents.security.preflight_seal import preflight_key
    from laptop_agents.session.preflight import PREFLIGHT_FILE, preflight_record, write_preflight_record

    report = PreflightReport(symbol=config.strategy.symbol, steps=list(PREFLIGHT_STEPS),
                             observed={"tpsl_orders_per_entry": 1, "closing_fill_side": "position",
                                       "trade_side_field": True, "position_mode": "ONE_WAY"},
                             wallet_before="10000", wallet_after="10000")
    state_dir.mkdir(parents=True, exist_ok=True)
    write_preflight_record(state_dir / PREFLIGHT_FILE,
                           preflight_record(report, api_key_fingerprint(KEY), config.config_hash, datetime.now(UTC),
                                            preflight_key(SECRET), rest_url=config.settings.bitunix.rest_url))
