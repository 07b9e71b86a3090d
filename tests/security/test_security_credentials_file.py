"""The encrypted credentials file: round trip, distinct failures, tamper detection, plaintext refusal."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from laptop_agents.security.credentials import Credentials
from laptop_agents.security.credentials_file import (
    ScryptParams,
    api_key_fingerprint,
    load_credentials,
    parse_plaintext_credentials,
    read_header,
    shred_file,
    write_credentials_file,
)
from laptop_agents.security.errors import (
    CredentialsFileError,
    CredentialsTamperedError,
    PlaintextCredentialsError,
    WrongPassphraseError,
)
from laptop_agents.security.secret import SecretStr

FAST = ScryptParams(n=2**10)
KEY, SECRET = "AKIA-canary-key-0001", "canary-secret-0001-ffff"
PASS = SecretStr("correct horse battery")


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "creds.enc"
    write_credentials_file(path, Credentials(KEY, SECRET), PASS, label="ops", params=FAST)
    return path


def test_round_trip_and_file_hygiene(tmp_path: Path) -> None:
    path = _write(tmp_path)
    creds = load_credentials(path, PASS)
    assert (creds.api_key, creds.secret_key) == (KEY, SECRET)
    text = path.read_text()
    assert KEY not in text and SECRET not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    header = read_header(path)
    assert header.fingerprint == api_key_fingerprint(KEY)
    assert header.fingerprint.startswith("sha256:") and KEY not in header.fingerprint
    doc = json.loads(text)
    assert doc["version"] == 1 and doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "AES-256-GCM"


def test_wrong_passphrase_is_its_own_error(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(WrongPassphraseError) as err:
        load_credentials(path, SecretStr("wrong passphrase!"))
    assert str(err.value) == f"wrong passphrase for credentials file {path}"


@pytest.mark.parametrize("field", ["metadata", "ciphertext", "kdf_n"])
def test_tampering_is_detected_and_distinct_from_wrong_passphrase(tmp_path: Path, field: str) -> None:
    path = _write(tmp_path)
    doc = json.loads(path.read_text())
    if field == "metadata":
        doc["metadata"]["api_key_fingerprint"] = "sha256:0000000000000000"
    elif field == "ciphertext":
        raw = bytearray(base64.b64decode(doc["ciphertext"]))
        raw[0] ^= 1
        doc["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    else:
        doc["kdf"]["n"] = 2**11  # a weaker/different KDF: the derived key changes -> looks like a wrong passphrase
    path.write_text(json.dumps(doc))
    expected = WrongPassphraseError if field == "kdf_n" else CredentialsTamperedError
    with pytest.raises(expected):
        load_credentials(path, PASS)


def test_plaintext_file_is_refused_as_plaintext(tmp_path: Path) -> None:
    path = tmp_path / "creds"
    path.write_text(f"BITUNIX_API_KEY={KEY}\nBITUNIX_SECRET_KEY={SECRET}\n")
    with pytest.raises(PlaintextCredentialsError) as err:
        load_credentials(path, PASS)
    assert KEY not in str(err.value) and SECRET not in str(err.value)
    other = tmp_path / "junk"
    other.write_text("hello")
    with pytest.raises(CredentialsFileError, match="not a laptop-agents"):
        read_header(other)


def test_unknown_version_and_hostile_kdf_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialsFileError, match="version 99"):
        read_header(path)
    doc["version"] = 1
    doc["kdf"]["n"] = 2**30
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialsFileError, match="power of two"):
        read_header(path)


def test_plaintext_parsing_accepts_example_layout_and_json() -> None:
    c = parse_plaintext_credentials(f"# comment\nexport BITUNIX_API_KEY=\"{KEY}\"\nBITUNIX_SECRET_KEY='{SECRET}'\n")
    assert (c.api_key, c.secret_key) == (KEY, SECRET)
    c = parse_plaintext_credentials(json.dumps({"api_key": KEY, "secret_key": SECRET}))
    assert c.secret_key == SECRET
    with pytest.raises(CredentialsFileError) as err:
        parse_plaintext_credentials(f"BITUNIX_API_KEY={KEY}\n")
    assert KEY not in str(err.value)


def test_example_file_at_repo_root_parses_with_placeholders() -> None:
    example = Path(__file__).resolve().parents[2] / "secrets.example"
    creds = parse_plaintext_credentials(example.read_text())
    assert "REPLACE" in creds.api_key


def test_shred_removes_the_file(tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_text("x" * 5000)
    shred_file(f)
    assert not f.exists()
