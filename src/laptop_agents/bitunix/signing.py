"""Bitunix request signing (REST headers and WebSocket login).

Bitunix does not use HMAC: it chains two plain SHA-256 hex digests::

    digest = sha256_hex(nonce + timestamp + apiKey + queryParams + body)
    sign   = sha256_hex(digest + secretKey)

``queryParams`` is every non-empty parameter, keys sorted ascending (ASCII),
concatenated as ``key + value`` without separators and *not* URL-encoded;
``body`` is the exact JSON text sent on the wire. The server hashes the raw
bytes it receives, so the body must be serialised once (compactly) and those
same bytes both signed and sent: :func:`encode_body` is that single place.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

NONCE_LENGTH = 32


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_nonce() -> str:
    """32 random lowercase hex characters (128 bits from the OS CSPRNG)."""
    return secrets.token_hex(NONCE_LENGTH // 2)


def param_value(value: Any) -> str | None:
    """Render one query value as it is both signed and sent; None = drop it.

    Booleans become ``true``/``false`` (JSON style, what the exchange expects),
    Decimals are written without exponent so ``1E+1`` never reaches the wire.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = format(value, "f")
    else:
        text = str(value)
    return text or None


def normalize_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Drop null/empty values and stringify the rest (the exact values sent)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        text = param_value(value)
        if text is not None:
            out[key] = text
    return out


def canonical_query(params: Mapping[str, Any] | None) -> str:
    """``queryParams`` of the digest: sorted ``key+value`` pairs, raw."""
    normalized = normalize_params(params)
    return "".join(key + normalized[key] for key in sorted(normalized))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot serialise {type(value).__name__} into a Bitunix request body")


def encode_body(body: Mapping[str, Any] | None) -> str:
    """Compact JSON text of a request body (``""`` when there is none).

    Decimals are serialised as strings: Bitunix takes quantities and prices as
    strings, and a float would lose exactness.
    """
    if body is None:
        return ""
    return json.dumps(body, separators=(",", ":"), default=_json_default)


def rest_signature(
    *,
    api_key: str,
    secret_key: str,
    nonce: str,
    timestamp: str,
    query_params: str = "",
    body: str = "",
) -> str:
    """The ``sign`` header for one request; inputs are the exact wire strings."""
    digest = sha256_hex(nonce + timestamp + api_key + query_params + body)
    return sha256_hex(digest + secret_key)


def signed_headers(
    *,
    api_key: str,
    secret_key: str,
    nonce: str,
    timestamp_ms: int,
    params: Mapping[str, Any] | None = None,
    body_text: str = "",
    language: str | None = "en-US",
) -> dict[str, str]:
    """All headers of a private REST request.

    ``body_text`` must be the very string that is sent (see :func:`encode_body`).
    """
    timestamp = str(timestamp_ms)
    headers = {
        "api-key": api_key,
        "nonce": nonce,
        "timestamp": timestamp,
        "sign": rest_signature(
            api_key=api_key,
            secret_key=secret_key,
            nonce=nonce,
            timestamp=timestamp,
            query_params=canonical_query(params),
            body=body_text,
        ),
        "Content-Type": "application/json",
    }
    if language:
        headers["language"] = language
    return headers


def ws_login_signature(*, api_key: str, secret_key: str, nonce: str, timestamp: int) -> str:
    """``sign`` of a private WebSocket login: sha256(sha256(nonce+ts+key)+secret)."""
    return sha256_hex(sha256_hex(nonce + str(timestamp) + api_key) + secret_key)


def ws_login_message(
    *, api_key: str, secret_key: str, nonce: str, timestamp_sec: int
) -> dict[str, Any]:
    """The ``{"op":"login",...}`` frame; timestamp in unix *seconds* (the documented unit)."""
    return {
        "op": "login",
        "args": [
            {
                "apiKey": api_key,
                "timestamp": timestamp_sec,
                "nonce": nonce,
                "sign": ws_login_signature(
                    api_key=api_key, secret_key=secret_key, nonce=nonce, timestamp=timestamp_sec
                ),
            }
        ],
    }
