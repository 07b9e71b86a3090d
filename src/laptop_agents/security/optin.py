"""The signed live opt-in and the single gate every live session passes through.

Why signed: a plain ``live_trading_enabled.txt`` can be created by anyone or
anything with write access (a typo'd script, a restored backup, a colleague's
test), and says nothing about *what* was agreed to. The opt-in document binds
the operator's consent to one account (API-key fingerprint), one symbol, the
limits in force, the exact config (its hash) and an expiry, and is signed with
the operator's Ed25519 key whose public half is pinned in config. Changing any
of them, or letting time pass, voids the consent.

Document (JSON)::

    {"format": "laptop-agents/live-optin", "version": 1,
     "payload": {"account_fingerprint": "sha256:…", "symbol": "BTCUSDT",
                 "limits": {"max_daily_loss_usd": "50", …}, "config_hash": "<sha256>",
                 "created_at": "…Z", "expires_at": "…Z", "note": "…"},
     "signature": {"alg": "Ed25519", "public_key": "ed25519:<b64>", "value": "<b64>"}}

The signed bytes are ``b"laptop-agents/live-optin/v1\\n"`` + the payload as
canonical JSON (sorted keys, compact), so a signature cannot be replayed for
another document type.

:func:`check_live_gate` runs *before* any exchange client exists: a refusal
cannot have sent a request.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from laptop_agents.core.models import parse_utc, utc_iso
from laptop_agents.core.state import atomic_write_text
from laptop_agents.security.credentials import Credentials
from laptop_agents.security.credentials_file import (
    api_key_fingerprint,
    load_credentials,
    read_header,
)
from laptop_agents.security.errors import (
    CredentialsFileError,
    CredentialsTamperedError,
    LiveGateRefused,
    OptInError,
    PassphraseUnavailableError,
    PlaintextCredentialsError,
    WrongPassphraseError,
)
from laptop_agents.security.passphrase import PassphraseSource
from laptop_agents.security.secret import SecretStr

if TYPE_CHECKING:  # pydantic config is heavy: keep `la --help` fast
    from laptop_agents.core.config_models import AppConfig

FORMAT = "laptop-agents/live-optin"
VERSION = 1
SIGNING_DOMAIN = b"laptop-agents/live-optin/v1\n"
PUBKEY_PREFIX = "ed25519:"
MAX_VALIDITY = timedelta(days=90)
DEFAULT_VALIDITY = timedelta(days=7)
MAX_OPTIN_BYTES = 64 * 1024
CLOCK_TOLERANCE = timedelta(minutes=5)
"""How far in the future an opt-in's ``created_at`` may be (clock skew between the signer's machine and ours)."""
LEDGER_FORMAT = "laptop-agents/optin-ledger"
LEDGER_NAME = "optin_ledger.json"
"""In the live workspace (``.workspace/live/``): the newest opt-in each account has used (replay protection)."""


# --------------------------------------------------------------------------- keys
def public_key_string(key: Ed25519PublicKey) -> str:
    """The form pinned in config: ``ed25519:<base64 of the 32 raw bytes>``."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBKEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    text = (text or "").strip()
    if not text.startswith(PUBKEY_PREFIX):
        raise OptInError(f"pinned public key must look like '{PUBKEY_PREFIX}<base64>'")
    try:
        raw = base64.b64decode(text[len(PUBKEY_PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise OptInError("pinned public key is not a valid Ed25519 key") from None


def generate_operator_key(private_path: Path, passphrase: SecretStr | None = None) -> str:
    """Create an Ed25519 key pair; write the private key (PKCS#8 PEM, mode 0600) and a ``.pub``.

    Returns the public key string to pin in config. Refuses to overwrite an
    existing private key: losing the old one silently would void every opt-in.
    """
    private_path = Path(private_path)
    if private_path.exists():
        raise OptInError(f"{private_path} already exists; refusing to overwrite an operator key")
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.reveal().encode("utf-8"))
        if passphrase is not None
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    atomic_write_text(private_path, pem.decode("ascii"))
    os.chmod(private_path, 0o600)
    pub = public_key_string(key.public_key())
    atomic_write_text(private_path.with_name(private_path.name + ".pub"), pub + "\n")
    return pub


def load_private_key(path: Path, passphrase: SecretStr | None = None) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OptInError(f"operator key {path} does not exist (create one with `la live optin keygen`)") from None
    except OSError as exc:
        raise OptInError(f"cannot read operator key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(
            data, password=passphrase.reveal().encode("utf-8") if passphrase is not None else None
        )
    except TypeError:
        raise OptInError(f"operator key {path} is encrypted: give its passphrase file") from None
    except ValueError:
        raise OptInError(f"operator key {path} cannot be loaded (wrong passphrase or not a PEM key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OptInError(f"operator key {path} is not an Ed25519 key")
    return key


# --------------------------------------------------------------------------- the document
def limits_in_force(config: AppConfig) -> dict[str, str]:
    """The risk limits the opt-in binds, as strings (exact decimals, stable across runs)."""
    hard = config.risk.hard_limits()
    limits = {
        "max_daily_loss_usd": hard.max_daily_loss_usd,
        "max_position_notional_usd": hard.max_position_notional_usd,
        "max_risk_per_trade_pct": hard.max_risk_per_trade_pct,
        "max_leverage": hard.max_leverage,
        "risk_per_trade_pct": config.risk.risk_per_trade_pct,
    }
    return {k: _norm_decimal(v) for k, v in limits.items()}


def _norm_decimal(value: Any) -> str:
    text = format(value.normalize(), "f") if hasattr(value, "normalize") else str(value)
    return text


@dataclass(frozen=True)
class OptInPayload:
    account_fingerprint: str
    symbol: str
    limits: dict[str, str]
    config_hash: str
    created_at: datetime
    expires_at: datetime
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_fingerprint": self.account_fingerprint,
            "symbol": self.symbol,
            "limits": dict(self.limits),
            "config_hash": self.config_hash,
            "created_at": utc_iso(self.created_at),
            "expires_at": utc_iso(self.expires_at),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Any) -> OptInPayload:
        if not isinstance(data, dict):
            raise OptInError("opt-in payload is missing")
        try:
            limits = data["limits"]
            if not isinstance(limits, dict):
                raise TypeError
            return cls(
                account_fingerprint=str(data["account_fingerprint"]),
                symbol=str(data["symbol"]),
                limits={str(k): str(v) for k, v in limits.items()},
                config_hash=str(data["config_hash"]),
                created_at=parse_utc(str(data["created_at"])),
                expires_at=parse_utc(str(data["expires_at"])),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OptInError(f"opt-in payload is malformed ({type(exc).__name__}: {exc})") from None

    def signed_bytes(self) -> bytes:
        return SIGNING_DOMAIN + json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")


def build_payload(
    config: AppConfig,
    account_fingerprint: str,
    *,
    now: datetime,
    valid_for: timedelta = DEFAULT_VALIDITY,
    note: str = "",
) -> OptInPayload:
    if valid_for <= timedelta(0) or valid_for > MAX_VALIDITY:
        raise OptInError(f"opt-in validity must be between 0 and {MAX_VALIDITY.days} days")
    return OptInPayload(
        account_fingerprint=account_fingerprint,
        symbol=config.strategy.symbol,
        limits=limits_in_force(config),
        config_hash=config.config_hash,
        created_at=now,
        expires_at=now + valid_for,
        note=note,
    )


def document(payload: OptInPayload, signature: dict[str, str] | None = None) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "payload": payload.to_dict(), "signature": signature}


def sign_payload(payload: OptInPayload, key: Ed25519PrivateKey) -> dict[str, Any]:
    sig = key.sign(payload.signed_bytes())
    return document(
        payload,
        {"alg": "Ed25519", "public_key": public_key_string(key.public_key()), "value": base64.b64encode(sig).decode()},
    )


def write_document(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(doc, indent=1) + "\n")


def read_document(path: Path) -> tuple[OptInPayload, dict[str, Any] | None]:
    """(payload, signature or None); OptInError on anything malformed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise OptInError(f"opt-in file {path} does not exist") from None
    except OSError as exc:
        raise OptInError(f"cannot read opt-in file {path}: {exc.strerror}") from None
    if len(raw) > MAX_OPTIN_BYTES:
        raise OptInError(f"opt-in file {path} is too large")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a giant integer, nesting beyond the stack
        raise OptInError(f"opt-in file {path} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise OptInError(f"opt-in file {path} is not a laptop-agents live opt-in document")
    if doc.get("version") != VERSION:
        raise OptInError(f"opt-in file {path} has version {doc.get('version')!r}; this version of la reads {VERSION}")
    payload = OptInPayload.from_dict(doc.get("payload"))
    signature = doc.get("signature")
    if signature is not None and not isinstance(signature, dict):
        raise OptInError(f"opt-in file {path}: signature is malformed")
    return payload, signature


def verify_signature(payload: OptInPayload, signature: dict[str, Any] | None, pinned: Ed25519PublicKey) -> None:
    """Raise OptInError unless ``signature`` is a valid Ed25519 signature by the *pinned* key."""
    if not signature:
        raise OptInError("opt-in is not signed (run `la live optin sign`)")
    if signature.get("alg") != "Ed25519":
        raise OptInError(f"opt-in signature algorithm {signature.get('alg')!r} is not Ed25519")
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except ValueError:
        raise OptInError("opt-in signature is not valid base64") from None
    try:
        pinned.verify(value, payload.signed_bytes())
    except InvalidSignature:
        claimed = signature.get("public_key")
        if claimed and claimed != public_key_string(pinned):
            raise OptInError("opt-in is signed by a key that is not the pinned operator key") from None
        raise OptInError("opt-in signature does not match its contents (altered after signing?)") from None


# --------------------------------------------------------------------------- replay protection
def _ledger_newest(ledger: Path, account: str) -> datetime | None:
    """The ``created_at`` of the newest opt-in this account has used, from the live workspace's ledger."""
    try:
        doc = json.loads(Path(ledger).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON, a giant integer
        raise OptInError(f"opt-in ledger {ledger} cannot be read ({type(exc).__name__}); restore it from a "
                         "backup (deleting it drops the replay protection)") from None
    accounts = doc.get("accounts") if isinstance(doc, dict) and doc.get("format") == LEDGER_FORMAT else None
    if not isinstance(accounts, dict):
        raise OptInError(f"opt-in ledger {ledger} is not a laptop-agents opt-in ledger")
    entry = accounts.get(account)
    if entry is None:
        return None
    try:
        return parse_utc(str(entry["created_at"]))
    except (KeyError, TypeError, ValueError):
        raise OptInError(f"opt-in ledger {ledger}: the entry for {account} is malformed") from None


def remember_optin(ledger: Path, payload: OptInPayload) -> None:
    """Record ``payload`` as the newest opt-in its account has used (atomic write; never moves backwards)."""
    ledger = Path(ledger)
    try:
        doc = json.loads(ledger.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = {"format": LEDGER_FORMAT, "accounts": {}}
    newest = _ledger_newest(ledger, payload.account_fingerprint)
    if newest is not None and newest >= payload.created_at:
        return
    doc["accounts"][payload.account_fingerprint] = {
        "created_at": utc_iso(payload.created_at), "expires_at": utc_iso(payload.expires_at),
    }
    atomic_write_text(ledger, json.dumps(doc, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- the gate
@dataclass(frozen=True)
class LiveGrant:
    """Proof that every live requirement held at ``checked_at``; carries the decrypted credentials."""

    credentials: Credentials = field(repr=False)
    payload: OptInPayload
    optin_path: Path
    credentials_path: Path
    checked_at: datetime

    @property
    def account_fingerprint(self) -> str:
        return self.payload.account_fingerprint

    @property
    def expires_at(self) -> datetime:
        return self.payload.expires_at

    def __reduce__(self) -> Any:
        raise TypeError("LiveGrant cannot be pickled (it holds credentials)")


def _refuse(reason: str, message: str) -> LiveGateRefused:
    return LiveGateRefused(reason, f"live trading refused: {message}")


def check_live_gate(
    flag: bool,
    optin_path: Path | None,
    pinned_pubkey: str | None,
    credentials_path: Path | None,
    passphrase_source: PassphraseSource,
    config: AppConfig,
    *,
    now: datetime | None = None,
    optin_ledger: Path | None = None,
) -> LiveGrant:
    """Every requirement for a live session, checked in order; the first failure refuses with one line.

    Reasons (``LiveGateRefused.reason``): no_live_flag, no_pinned_key, no_optin, bad_optin, unsigned_optin,
    bad_signature, validity_too_long, created_in_future, expired, replayed_optin, no_credentials,
    plaintext_credentials, bad_credentials, no_passphrase, wrong_passphrase, tampered_credentials, wrong_account,
    wrong_symbol, limits_changed, config_changed.

    The opt-in's lifetime is enforced here, not only by `la live optin create`: at most ``MAX_VALIDITY`` from
    ``created_at`` to ``expires_at``, ``created_at`` not in the future (beyond ``CLOCK_TOLERANCE``), and, with
    ``optin_ledger`` (the live workspace's record of the newest opt-in each account has used), never older than
    that one: a superseded consent cannot be replayed. A passing gate records the opt-in there.
    Makes no network request: call it before building any exchange client.
    """
    now = now or datetime.now(UTC)
    if not flag:
        raise _refuse("no_live_flag", "the --live flag was not given (live trading is never the default)")
    if not pinned_pubkey:
        raise _refuse("no_pinned_key", "no operator public key is pinned in config (live.optin_public_key)")
    try:
        pinned = parse_public_key(pinned_pubkey)
    except OptInError as exc:
        raise _refuse("no_pinned_key", f"config live.optin_public_key is invalid: {exc}") from None
    if optin_path is None or not Path(optin_path).is_file():
        where = f" at {optin_path}" if optin_path is not None else ""
        raise _refuse("no_optin", f"no signed opt-in file{where} (create one with `la live optin create` and `sign`)")
    try:
        payload, signature = read_document(Path(optin_path))
    except OptInError as exc:
        raise _refuse("bad_optin", str(exc)) from None
    if not signature:
        raise _refuse("unsigned_optin", f"opt-in {optin_path} is not signed (run `la live optin sign`)")
    try:
        verify_signature(payload, signature, pinned)
    except OptInError as exc:
        raise _refuse("bad_signature", f"opt-in {optin_path}: {exc}") from None
    lifetime = payload.expires_at - payload.created_at
    if lifetime <= timedelta(0) or lifetime > MAX_VALIDITY:
        raise _refuse("validity_too_long",
                      f"opt-in {optin_path} is valid from {utc_iso(payload.created_at)} to {utc_iso(payload.expires_at)}; "
                      f"the most an opt-in may cover is {MAX_VALIDITY.days} days: create and sign a new one")
    if payload.created_at > now + CLOCK_TOLERANCE:
        raise _refuse("created_in_future",
                      f"opt-in {optin_path} was created at {utc_iso(payload.created_at)}, in the future (now "
                      f"{utc_iso(now)}); check this machine's clock, or create and sign a new one")
    if now >= payload.expires_at:
        raise _refuse("expired", f"opt-in expired at {utc_iso(payload.expires_at)}; create and sign a new one")
    if optin_ledger is not None:
        try:
            newest = _ledger_newest(optin_ledger, payload.account_fingerprint)
        except OptInError as exc:
            raise _refuse("bad_optin", str(exc)) from None
        if newest is not None and payload.created_at < newest:
            raise _refuse("replayed_optin",
                          f"opt-in {optin_path} (created {utc_iso(payload.created_at)}) is older than the opt-in "
                          f"created {utc_iso(newest)} that this account already used; an older consent cannot "
                          "replace a newer one: sign a new opt-in")
    if credentials_path is None or not Path(credentials_path).is_file():
        raise _refuse("no_credentials", f"no credentials file at {credentials_path} (run `la secrets encrypt`)")
    try:
        read_header(Path(credentials_path))
    except PlaintextCredentialsError as exc:
        raise _refuse("plaintext_credentials", str(exc)) from None
    except CredentialsFileError as exc:
        raise _refuse("bad_credentials", str(exc)) from None
    try:
        passphrase = passphrase_source.read()
    except PassphraseUnavailableError as exc:
        raise _refuse("no_passphrase", str(exc)) from None
    try:
        credentials = load_credentials(Path(credentials_path), passphrase)
    except WrongPassphraseError as exc:
        raise _refuse("wrong_passphrase", str(exc)) from None
    except CredentialsTamperedError as exc:
        raise _refuse("tampered_credentials", str(exc)) from None
    except CredentialsFileError as exc:
        raise _refuse("bad_credentials", str(exc)) from None
    account = api_key_fingerprint(credentials.api_key)
    if account != payload.account_fingerprint:
        raise _refuse(
            "wrong_account",
            f"opt-in is for account {payload.account_fingerprint}, the credentials are for {account}",
        )
    if payload.symbol != config.strategy.symbol:
        raise _refuse("wrong_symbol", f"opt-in is for {payload.symbol}, the config trades {config.strategy.symbol}")
    limits = limits_in_force(config)
    if limits != payload.limits:
        changed = sorted(k for k in set(limits) | set(payload.limits) if limits.get(k) != payload.limits.get(k))
        raise _refuse("limits_changed", f"risk limits changed since the opt-in was signed: {', '.join(changed)}")
    if payload.config_hash != config.config_hash:
        raise _refuse(
            "config_changed",
            f"config changed since the opt-in was signed (hash {config.config_hash[:12]}, "
            f"opt-in {payload.config_hash[:12]}); review, then create and sign a new opt-in",
        )
    if optin_ledger is not None:
        try:
            remember_optin(optin_ledger, payload)
        except OSError as exc:
            raise _refuse("bad_optin", f"cannot record the opt-in in {optin_ledger}: {exc.strerror}") from None
    return LiveGrant(credentials, payload, Path(optin_path), Path(credentials_path), now)
