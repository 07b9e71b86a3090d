"""Tamper evidence for the live preflight record (``<workspace>/live/preflight.json``).

Why: ``la run --live`` / ``la serve --live`` start only if a preflight for this account and config hash passed
recently, and the record saying so is a plain JSON file in the workspace. Anything that can write that directory
(a script with a bug, a restored backup, a sync tool, a person "just getting going") could make an old pass look
fresh, point a pass at another account or config hash, or turn a failure into a pass. The gate must accept only
records ``la live preflight`` itself wrote after a full pass.

How: the record carries ``seal = HMAC-SHA256(key, DOMAIN + canonical JSON of every other field)`` where
``key = HMAC-SHA256(api secret, DOMAIN)``. The API secret exists only inside the encrypted credentials file, which
only the live gate unlocks (with the operator's passphrase, the same gate that checks the signed opt-in); the
preflight seals with it and the live gate verifies with it. So the record is bound to the opt-in's account (the
gate's decrypted credentials) and to everything in it (time, account fingerprint, config hash, steps, result,
observed dialect).

Threat model
  * Covered: an edited, truncated, hand-written or copied-from-another-account record (another secret, another
    key); a record from an older version without a seal. All refuse with one line before any exchange request.
  * Not covered, by design: whoever holds the decrypted API secret (they can trade without us; the secret is the
    account) and replaying an older *genuine* record of the same account and config, which the sealed ``at`` and
    ``live.preflight_max_age_hours`` bound. The key is derived with a domain label, so it is useless for signing
    anything else, and neither the secret nor the key is ever stored or printed (only the seal value is).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

DOMAIN = b"laptop-agents/live-preflight/v1"
SEAL_FIELD = "seal"
ALGORITHM = "HMAC-SHA256"


def preflight_key(api_secret: str) -> bytes:
    """The record key of one account, derived from its API secret (domain-separated; the secret never leaves)."""
    if not api_secret:
        raise ValueError("an API secret is required to seal the preflight record")
    return hmac.new(api_secret.encode("utf-8"), DOMAIN, hashlib.sha256).digest()


def _signed_bytes(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != SEAL_FIELD}
    return DOMAIN + b"\n" + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(record: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``record`` plus its seal (a new dict; the input is not changed)."""
    value = hmac.new(key, _signed_bytes(record), hashlib.sha256).hexdigest()
    return {**{k: v for k, v in record.items() if k != SEAL_FIELD}, SEAL_FIELD: {"alg": ALGORITHM, "value": value}}


def seal_problem(record: dict[str, Any], key: bytes) -> str | None:
    """Why ``record``'s seal does not prove it unchanged under ``key`` (None when it does)."""
    found = record.get(SEAL_FIELD)
    if not isinstance(found, dict) or not isinstance(found.get("value"), str):
        return "it has no seal (written by hand or by an older version)"
    if found.get("alg") != ALGORITHM:
        return f"its seal algorithm {str(found.get('alg'))[:20]!r} is not {ALGORITHM}"
    expected = seal(record, key)[SEAL_FIELD]["value"]
    # bytes, not str: compare_digest raises TypeError on a str holding non-ASCII (an edited seal must refuse with
    # one line, never crash the gate); UTF-8 keeps any text comparable and never equal to the hex digest.
    if not hmac.compare_digest(expected.encode("ascii"), found["value"].encode("utf-8", "surrogatepass")):
        return ("its seal does not match its contents (changed after `la live preflight` wrote it, or written "
                "under another API secret)")
    return None
