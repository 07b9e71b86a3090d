"""Shared helpers for security and live tests: config dirs, passphrase files, signed opt-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from laptop_agents.config_loader import default_files, load_config
from laptop_agents.core.config_models import AppConfig
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
from laptop_agents.security.secret import SecretStr

FAST = ScryptParams(n=2**10)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def write_config(directory: Path, risk_extra: str = "") -> AppConfig:
    for rel, text in default_files().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + risk_extra if rel.name == "risk.yaml" else text)
    return load_config(directory, env={})


def passphrase_source(tmp: Path, value: str = "operator passphrase 1") -> PassphraseSource:
    tmp.mkdir(parents=True, exist_ok=True)
    f = tmp / "passphrase"
    f.write_text(value + "\n")
    return PassphraseSource(env={"LA_PASSPHRASE_FILE": str(f)}, docker_dir=tmp / "no-docker")


class LiveSetup:
    """Everything a valid live start needs, under one directory."""

    def __init__(self, root: Path, api_key: str = "testkey", secret: str = "testsecret") -> None:
        self.root = root
        self.config = write_config(root / "config")
        self.source = passphrase_source(root)
        self.credentials_path = root / "creds.enc"
        write_credentials_file(
            self.credentials_path, Credentials(api_key, secret), self.source.read(), params=FAST
        )
        self.key_path = root / "operator.key"
        self.pubkey = generate_operator_key(self.key_path)
        self.optin_path = root / "optin.json"
        self.sign(api_key_fingerprint(api_key))

    def sign(self, fingerprint: str, *, now: datetime = NOW, valid_for: timedelta = timedelta(days=7),
             config: AppConfig | None = None, key_path: Path | None = None) -> None:
        payload = build_payload(config or self.config, fingerprint, now=now, valid_for=valid_for)
        write_document(self.optin_path, sign_payload(payload, load_private_key(key_path or self.key_path)))

    def passphrase(self) -> SecretStr:
        return self.source.read()
