"""The encrypted credentials file: a versioned JSON document sealed with AES-256-GCM.

Why this shape:
- **scrypt** turns a human passphrase into a key at a memory-hard cost, so a
  stolen file cannot be brute-forced cheaply; salt and cost parameters are stored
  in the file so they can be raised later without breaking old files (bounded on
  read so a hostile file cannot make us allocate gigabytes).
- **AES-GCM** authenticates as well as encrypts. The header (format, version,
  KDF, cipher, metadata incl. the API-key fingerprint) is the *associated data*,
  so nobody can swap the fingerprint or weaken the parameters undetected.
- A **key check** (an HMAC of a constant under a sub-key of the scrypt output)
  separates "wrong passphrase" from "file altered": both would otherwise be the
  same GCM tag failure, and the operator needs to know which one it is. It gives
  an attacker nothing the GCM tag does not already give (both need scrypt per guess).
- The **fingerprint** (``sha256:`` + 16 hex of a domain-separated SHA-256 of the
  API key) is readable without the passphrase, for `la live optin create`, but is
  only trusted after decryption proves it matches the key inside.

File layout (UTF-8 JSON)::

    {"format": "laptop-agents/credentials", "version": 1,
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "length": 32, "salt": "<b64>"},
     "cipher": {"name": "AES-256-GCM", "nonce": "<b64>"},
     "metadata": {"exchange": "bitunix", "api_key_fingerprint": "sha256:…", "created_at": "…Z", "label": "…"},
     "key_check": "<b64>", "ciphertext": "<b64>"}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as _secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from laptop_agents.core.models import utc_iso
from laptop_agents.core.state import atomic_write_text
from laptop_agents.security.credentials import Credentials
from laptop_agents.security.errors import (
    CredentialsFileError,
    CredentialsTamperedError,
    PlaintextCredentialsError,
    WrongPassphraseError,
)
from laptop_agents.security.secret import REGISTRY, SecretStr

FORMAT = "laptop-agents/credentials"
VERSION = 1
CIPHER = "AES-256-GCM"
MAX_FILE_BYTES = 64 * 1024
_FP_DOMAIN = b"laptop-agents/api-key-fingerprint/v1\x00"
_KEY_CHECK_LABEL = b"laptop-agents/credentials/key-check/v1"
_ENC_KEY_LABEL = b"laptop-agents/credentials/enc-key/v1"

PLAINTEXT_API_KEY_FIELDS = ("BITUNIX_API_KEY", "API_KEY", "api_key", "apiKey")
PLAINTEXT_SECRET_FIELDS = ("BITUNIX_SECRET_KEY", "SECRET_KEY", "BITUNIX_API_SECRET", "API_SECRET", "secret_key", "secretKey")


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost. Default n=2**15, r=8 (32 MiB, ~0.1 s): interactive-grade, as RFC 7914 suggests."""

    n: int = 2**15
    r: int = 8
    p: int = 1
    length: int = 32

    MIN_N = 2**10
    MAX_N = 2**20
    MAX_MEMORY = 1 << 30  # 128 * n * r bytes

    def validate(self) -> None:
        if self.n < self.MIN_N or self.n > self.MAX_N or self.n & (self.n - 1):
            raise CredentialsFileError(f"scrypt n={self.n} must be a power of two in [{self.MIN_N}, {self.MAX_N}]")
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16 or self.length != 32:
            raise CredentialsFileError(f"unsupported scrypt parameters r={self.r} p={self.p} length={self.length}")
        if 128 * self.n * self.r > self.MAX_MEMORY:
            raise CredentialsFileError("scrypt parameters need more than 1 GiB of memory")


def api_key_fingerprint(api_key: str) -> str:
    """``sha256:<16 hex>``: identifies an account without revealing the key."""
    digest = hashlib.sha256(_FP_DOMAIN + api_key.strip().encode("utf-8")).hexdigest()
    return "sha256:" + digest[:16]


@dataclass(frozen=True)
class CredentialsHeader:
    """The authenticated-but-readable part of the file."""

    version: int
    kdf: ScryptParams
    salt: bytes
    nonce: bytes
    metadata: dict[str, Any]
    key_check: bytes
    ciphertext: bytes

    @property
    def fingerprint(self) -> str:
        return str(self.metadata.get("api_key_fingerprint", ""))

    def aad(self) -> bytes:
        header = {
            "format": FORMAT,
            "version": self.version,
            "kdf": _kdf_dict(self.kdf, self.salt),
            "cipher": {"name": CIPHER, "nonce": _b64(self.nonce)},
            "metadata": self.metadata,
            "key_check": _b64(self.key_check),
        }
        return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise CredentialsFileError(f"credentials file {path}: field {what} is missing or not a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise CredentialsFileError(f"credentials file {path}: field {what} is not valid base64") from None


def _kdf_dict(params: ScryptParams, salt: bytes) -> dict[str, Any]:
    return {"name": "scrypt", "n": params.n, "r": params.r, "p": params.p, "length": params.length, "salt": _b64(salt)}


def _derive(passphrase: SecretStr, params: ScryptParams, salt: bytes) -> tuple[bytes, bytes]:
    """(encryption key, key-check value) from one scrypt run."""
    master = Scrypt(salt=salt, length=params.length, n=params.n, r=params.r, p=params.p).derive(
        passphrase.reveal().encode("utf-8")
    )
    enc_key = hmac.new(master, _ENC_KEY_LABEL, hashlib.sha256).digest()
    check = hmac.new(master, _KEY_CHECK_LABEL, hashlib.sha256).digest()[:16]
    return enc_key, check


def encrypt_credentials(
    credentials: Credentials,
    passphrase: SecretStr,
    *,
    label: str = "",
    params: ScryptParams | None = None,
    now: datetime | None = None,
) -> str:
    """The file's text for ``credentials`` sealed under ``passphrase``."""
    params = params or ScryptParams()
    params.validate()
    salt = _secrets.token_bytes(16)
    nonce = _secrets.token_bytes(12)
    enc_key, check = _derive(passphrase, params, salt)
    metadata = {
        "exchange": "bitunix",
        "api_key_fingerprint": api_key_fingerprint(credentials.api_key),
        "created_at": utc_iso(now or datetime.now(UTC)),
        "label": label,
    }
    header = CredentialsHeader(VERSION, params, salt, nonce, metadata, check, b"")
    plaintext = json.dumps(
        {"api_key": credentials.api_key, "secret_key": credentials.secret_key}, separators=(",", ":")
    ).encode("utf-8")
    ciphertext = AESGCM(enc_key).encrypt(nonce, plaintext, header.aad())
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": _kdf_dict(params, salt),
        "cipher": {"name": CIPHER, "nonce": _b64(nonce)},
        "metadata": metadata,
        "key_check": _b64(check),
        "ciphertext": _b64(ciphertext),
    }
    return json.dumps(doc, indent=1) + "\n"


def write_credentials_file(
    path: Path,
    credentials: Credentials,
    passphrase: SecretStr,
    *,
    label: str = "",
    params: ScryptParams | None = None,
    now: datetime | None = None,
) -> CredentialsHeader:
    """Encrypt and write atomically with mode 0600 (temp file, fsync, rename)."""
    text = encrypt_credentials(credentials, passphrase, label=label, params=params, now=now)
    path = Path(path)
    atomic_write_text(path, text)  # mkstemp creates the temp file 0600; rename keeps it
    os.chmod(path, 0o600)
    return read_header(path)


def _read_text(path: Path) -> str:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CredentialsFileError(f"credentials file {path} does not exist (create it with `la secrets encrypt`)") from None
    except OSError as exc:
        raise CredentialsFileError(f"cannot read credentials file {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CredentialsFileError(f"credentials file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsFileError(f"credentials file {path} is not UTF-8 text") from None


def read_header(path: Path) -> CredentialsHeader:
    """Parse the file without decrypting; refuse plaintext keys and unknown formats."""
    path = Path(path)
    text = _read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        if looks_like_plaintext(text):
            raise PlaintextCredentialsError(
                f"credentials file {path} holds plaintext API keys: encrypt it with "
                "`la secrets encrypt --in <file> --out <file.enc> --shred`"
            )
        raise CredentialsFileError(f"credentials file {path} is not a laptop-agents encrypted credentials file")
    version = doc.get("version")
    if version != VERSION:
        raise CredentialsFileError(f"credentials file {path} has version {version!r}; this version of la reads {VERSION}")
    kdf = doc.get("kdf")
    cipher = doc.get("cipher")
    metadata = doc.get("metadata")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise CredentialsFileError(f"credentials file {path}: unsupported kdf (expected scrypt)")
    if not isinstance(cipher, dict) or cipher.get("name") != CIPHER:
        raise CredentialsFileError(f"credentials file {path}: unsupported cipher (expected {CIPHER})")
    if not isinstance(metadata, dict):
        raise CredentialsFileError(f"credentials file {path}: metadata is missing")
    try:
        params = ScryptParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]), length=int(kdf.get("length", 32)))
    except (KeyError, TypeError, ValueError):
        raise CredentialsFileError(f"credentials file {path}: kdf parameters are malformed") from None
    params.validate()
    header = CredentialsHeader(
        version=VERSION,
        kdf=params,
        salt=_unb64(kdf.get("salt"), "kdf.salt", path),
        nonce=_unb64(cipher.get("nonce"), "cipher.nonce", path),
        metadata=metadata,
        key_check=_unb64(doc.get("key_check"), "key_check", path),
        ciphertext=_unb64(doc.get("ciphertext"), "ciphertext", path),
    )
    if len(header.nonce) != 12 or len(header.salt) < 16 or len(header.key_check) != 16:
        raise CredentialsFileError(f"credentials file {path}: nonce, salt or key_check has the wrong length")
    return header


def load_credentials(path: Path, passphrase: SecretStr) -> Credentials:
    """Decrypt; the key pair is registered for log masking before it is returned."""
    path = Path(path)
    header = read_header(path)
    enc_key, check = _derive(passphrase, header.kdf, header.salt)
    if not hmac.compare_digest(check, header.key_check):
        raise WrongPassphraseError(f"wrong passphrase for credentials file {path}")
    try:
        plaintext = AESGCM(enc_key).decrypt(header.nonce, header.ciphertext, header.aad())
    except InvalidTag:
        raise CredentialsTamperedError(
            f"credentials file {path} was altered or corrupted (authentication failed); restore it from backup"
        ) from None
    try:
        inner = json.loads(plaintext.decode("utf-8"))
        credentials = Credentials(inner["api_key"], inner["secret_key"])
    except (ValueError, KeyError, TypeError):
        raise CredentialsTamperedError(f"credentials file {path}: decrypted content is malformed") from None
    REGISTRY.add(*credentials.secrets())
    if api_key_fingerprint(credentials.api_key) != header.fingerprint:
        raise CredentialsTamperedError(
            f"credentials file {path}: metadata fingerprint does not match the key inside"
        )
    return credentials


# --------------------------------------------------------------------------- plaintext input
def looks_like_plaintext(text: str) -> bool:
    try:
        parse_plaintext_credentials(text)
    except CredentialsFileError:
        return False
    return True


def parse_plaintext_credentials(text: str) -> Credentials:
    """API key pair from ``KEY=VALUE`` lines (the ``secrets.example`` layout) or a JSON object.

    Accepted names: ``BITUNIX_API_KEY``/``API_KEY``/``api_key`` and
    ``BITUNIX_SECRET_KEY``/``SECRET_KEY``/``secret_key`` (and a few aliases).
    Errors never echo the input.
    """
    fields: dict[str, str] = {}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            raise CredentialsFileError("plaintext credentials: invalid JSON") from None
        if isinstance(obj, dict):
            fields = {str(k): str(v) for k, v in obj.items() if isinstance(v, (str, int))}
    else:
        for line in stripped.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key = key.strip().removeprefix("export ").strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            fields[key] = value
    api_key = next((fields[k] for k in PLAINTEXT_API_KEY_FIELDS if fields.get(k)), None)
    secret = next((fields[k] for k in PLAINTEXT_SECRET_FIELDS if fields.get(k)), None)
    if not api_key or not secret:
        raise CredentialsFileError(
            "plaintext credentials need BITUNIX_API_KEY=... and BITUNIX_SECRET_KEY=... (see secrets.example)"
        )
    REGISTRY.add(api_key, secret)
    return Credentials(api_key, secret)


def shred_file(path: Path, passes: int = 1) -> None:
    """Overwrite a file with random bytes, fsync, then unlink it.

    Best effort: on copy-on-write filesystems (btrfs, ZFS), SSDs with wear
    levelling or with snapshots, old blocks may survive; the runbook says so and
    recommends keeping plaintext keys on tmpfs only.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as fh:
        for _ in range(max(1, passes)):
            fh.seek(0)
            remaining = size
            while remaining > 0:
                chunk = min(remaining, 65536)
                fh.write(_secrets.token_bytes(chunk))
                remaining -= chunk
            os.fsync(fh.fileno())
        fh.truncate(0)
        os.fsync(fh.fileno())
    path.unlink()
