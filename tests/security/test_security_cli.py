"""`la secrets encrypt|verify|rotate` and `la live optin keygen|create|sign|verify` through argparse."""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from laptop_agents.config_loader import load_config
from laptop_agents.core.errors import UsageError
from laptop_agents.security import cli
from laptop_agents.security.credentials_file import (
    api_key_fingerprint,
    load_credentials,
)
from laptop_agents.security.errors import OptInError, WrongPassphraseError
from laptop_agents.security.secret import SecretStr
from tests.security.helpers import NOW, write_config

KEY, SECRET = "CANARYKEY-aaaa-1111", "CANARYSECRET-bbbb-2222"
KEY2, SECRET2 = "CANARYKEY-cccc-3333", "CANARYSECRET-dddd-4444"


def _parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="la")
    sub = root.add_subparsers(dest="command")
    cli.add_secrets_arguments(sub.add_parser("secrets"))
    cli.add_live_arguments(sub.add_parser("live"))
    return root


def _run(argv: list[str], now: object = None) -> str:
    args = _parser().parse_args(argv)
    out = io.StringIO()
    if args.command == "secrets":
        assert cli.run_secrets(args, out) == 0
    else:
        assert cli.run_live(args, out, now=now or NOW, load_config=load_config) == 0  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def passfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    f = tmp_path / "pass1"
    f.write_text("first passphrase 111\n")
    monkeypatch.setenv("LA_PASSPHRASE_FILE", str(f))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    return f


def _no_plaintext_left(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in (SECRET, SECRET2):
                assert value.encode() not in data, f"plaintext secret left in {path}"


def test_encrypt_from_file_with_shred_then_verify(tmp_path: Path, passfile: Path) -> None:
    plain = tmp_path / "plain.env"
    plain.write_text(f"BITUNIX_API_KEY={KEY}\nBITUNIX_SECRET_KEY={SECRET}\n")
    enc = tmp_path / "creds.enc"
    out = _run(["secrets", "encrypt", "--in", str(plain), "--out", str(enc), "--shred"])
    assert not plain.exists()
    assert api_key_fingerprint(KEY) in out and KEY not in out
    _no_plaintext_left(tmp_path)
    assert "OK" in _run(["secrets", "verify", "--file", str(enc)])


def test_encrypt_from_stdin(tmp_path: Path, passfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"api_key": KEY, "secret_key": SECRET})))
    enc = tmp_path / "creds.enc"
    _run(["secrets", "encrypt", "--stdin", "--out", str(enc)])
    assert load_credentials(enc, SecretStr("first passphrase 111")).secret_key == SECRET
    with pytest.raises(UsageError, match="already exists"):
        _run(["secrets", "encrypt", "--stdin", "--out", str(enc)])


def test_no_option_takes_a_secret_on_argv(passfile: Path) -> None:
    for argv in (["secrets", "encrypt", "--stdin", "--passphrase", "x"], ["secrets", "encrypt", "--api-key", KEY]):
        with pytest.raises(SystemExit):
            _parser().parse_args(argv)


def test_rotate_passphrase_then_keys_leaves_no_plaintext(tmp_path: Path, passfile: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"BITUNIX_API_KEY={KEY}\nBITUNIX_SECRET_KEY={SECRET}\n"))
    enc = tmp_path / "creds.enc"
    _run(["secrets", "encrypt", "--stdin", "--out", str(enc)])
    new_pass = tmp_path / "pass2"
    new_pass.write_text("second passphrase 222")
    assert "rotated passphrase" in _run(["secrets", "rotate", "--file", str(enc), "--new-passphrase-file", str(new_pass)])
    with pytest.raises(WrongPassphraseError):
        load_credentials(enc, SecretStr("first passphrase 111"))
    assert load_credentials(enc, SecretStr("second passphrase 222")).api_key == KEY
    monkeypatch.setenv("LA_PASSPHRASE_FILE", str(new_pass))
    new_keys = tmp_path / "new.env"
    new_keys.write_text(f"BITUNIX_API_KEY={KEY2}\nBITUNIX_SECRET_KEY={SECRET2}\n")
    out = _run(["secrets", "rotate", "--file", str(enc), "--new-keys", str(new_keys), "--shred"])
    assert "rotated API keys" in out and not new_keys.exists()
    creds = load_credentials(enc, SecretStr("second passphrase 222"))
    assert (creds.api_key, creds.secret_key) == (KEY2, SECRET2)
    _no_plaintext_left(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_rotate_without_a_change_is_a_usage_error(tmp_path: Path, passfile: Path) -> None:
    with pytest.raises(UsageError, match="rotate needs"):
        _run(["secrets", "rotate", "--file", str(tmp_path / "x")])


def test_optin_keygen_create_sign_verify(tmp_path: Path, passfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "config"
    write_config(config_dir)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"BITUNIX_API_KEY={KEY}\nBITUNIX_SECRET_KEY={SECRET}\n"))
    enc = tmp_path / "creds.enc"
    _run(["secrets", "encrypt", "--stdin", "--out", str(enc)])
    key = tmp_path / "op.key"
    out = _run(["live", "optin", "keygen", "--key", str(key)])
    pub = out.split("live.optin_public_key): ")[1].strip()
    assert (tmp_path / "op.key.pub").read_text().strip() == pub
    optin = tmp_path / "optin.json"
    _run(["live", "optin", "create", "--out", str(optin), "--credentials", str(enc), "--config-dir", str(config_dir)])
    with pytest.raises(OptInError, match="not signed"):
        _run(["live", "optin", "verify", "--in", str(optin), "--pubkey", pub])
    _run(["live", "optin", "sign", "--in", str(optin), "--key", str(key)])
    ok = _run(["live", "optin", "verify", "--in", str(optin), "--pubkey", pub, "--config-dir", str(config_dir),
               "--credentials", str(enc)])
    assert ok.startswith("OK") and api_key_fingerprint(KEY) in ok
    with pytest.raises(OptInError, match="expired"):
        _run(["live", "optin", "verify", "--in", str(optin), "--pubkey", pub], now=NOW + timedelta(days=8))
    # through the shell (`la live optin create`, no --config-dir, run from elsewhere): $LA_CONFIG_DIR, as `la run`
    from laptop_agents.cli import main as la_main
    from laptop_agents.security.optin import read_document

    monkeypatch.setenv("LA_CONFIG_DIR", str(config_dir))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert la_main(["live", "optin", "create", "--out", str(tmp_path / "optin2.json"), "--credentials", str(enc)]) == 0
    assert read_document(tmp_path / "optin2.json")[0].config_hash == load_config(config_dir).config_hash
    (config_dir / "risk.yaml").write_text((config_dir / "risk.yaml").read_text().replace("risk_per_trade_pct: 0.05",
                                                                                          "risk_per_trade_pct: 0.04"))
    with pytest.raises(OptInError, match="does not match"):
        _run(["live", "optin", "verify", "--in", str(optin), "--pubkey", pub, "--config-dir", str(config_dir)])
    with pytest.raises(OptInError, match="already exists"):
        _run(["live", "optin", "keygen", "--key", str(key)])
