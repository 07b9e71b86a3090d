"""Request and WebSocket-login authentication, written from the reference page alone.

The mock deliberately shares no code with our Bitunix client: if both computed the signature with the same
helper, a bug in it would be invisible. Everything here is pure (no I/O), so it is unit-tested directly.

REST signature (reference page, "Signature"):

    digest = sha256_hex(nonce + timestamp + apiKey + queryParams + body)
    sign   = sha256_hex(digest + secretKey)

``queryParams`` is the decoded query string with keys sorted ascending (ASCII), each ``key + value`` with no
separator, empty values dropped; ``body`` is the exact bytes received (so a client that signs one JSON
serialisation and sends another is caught). WebSocket login signs ``nonce + str(timestamp) + apiKey``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import errors
from .errors import ApiError

NONCE_LENGTH = 32  # documented: "32 random characters"


def check_nonce(nonce: str) -> None:
    """The documented nonce is exactly 32 characters; anything else is refused like a bad signature."""
    if len(nonce) != NONCE_LENGTH:
        raise ApiError(errors.SIGNATURE_ERROR, f"Signature Error: nonce must be {NONCE_LENGTH} characters, got {len(nonce)}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """``key+value`` pairs sorted by key (stable for repeated keys), empty values dropped, no encoding."""
    pairs = [(k, v) for k, v in params if v is not None and v != ""]
    pairs.sort(key=lambda kv: kv[0])
    return "".join(k + v for k, v in pairs)


def expected_rest_sign(
    api_key: str, secret: str, nonce: str, timestamp: str, query: str, body: bytes
) -> str:
    digest = sha256_hex((nonce + timestamp + api_key + query).encode() + body)
    return sha256_hex((digest + secret).encode())


def expected_login_sign(api_key: str, secret: str, nonce: str, timestamp: str) -> str:
    digest = sha256_hex((nonce + timestamp + api_key).encode())
    return sha256_hex((digest + secret).encode())


@dataclass(frozen=True, slots=True)
class RestCredentials:
    """The four auth headers of a private REST request, as received."""

    api_key: str
    nonce: str
    timestamp: str
    sign: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RestCredentials:
        # The page says `timestamp`; old doc examples say `time`. Accepting both costs nothing.
        ts = headers.get("timestamp") or headers.get("time") or ""
        return cls(
            api_key=(headers.get("api-key") or "").strip(),
            nonce=headers.get("nonce") or "",
            timestamp=ts.strip(),
            sign=(headers.get("sign") or "").strip(),
        )


def verify_rest_request(
    creds: RestCredentials,
    secrets: Mapping[str, str],
    query_params: Iterable[tuple[str, str]],
    body: bytes,
    now_ms: int,
    recv_window_ms: int,
) -> str:
    """Return the authenticated api key or raise :class:`ApiError` (10003 or 10007).

    Order of checks mirrors what a client can fix: a missing key first (10003), then the clock (a stale
    ``timestamp`` is reported as a signature error, 10007, because the page gives no dedicated code), then the
    signature itself.
    """
    if not creds.api_key:
        raise ApiError(errors.API_KEY_EMPTY)
    secret = secrets.get(creds.api_key)
    if secret is None:
        raise ApiError(errors.API_KEY_EMPTY, "api-key is invalid")
    if not creds.nonce or not creds.timestamp or not creds.sign:
        raise ApiError(errors.SIGNATURE_ERROR, "Signature Error: nonce, timestamp and sign are required")
    check_nonce(creds.nonce)
    try:
        ts = int(creds.timestamp)
    except ValueError:
        raise ApiError(errors.SIGNATURE_ERROR, "Signature Error: timestamp must be epoch milliseconds") from None
    if abs(now_ms - ts) > recv_window_ms:
        raise ApiError(
            errors.SIGNATURE_ERROR,
            f"Signature Error: timestamp {ts} is outside the receive window "
            f"({recv_window_ms} ms) of server time {now_ms}",
        )
    expected = expected_rest_sign(
        creds.api_key, secret, creds.nonce, creds.timestamp, canonical_query(query_params), body
    )
    if not hmac.compare_digest(expected.encode(), creds.sign.lower().encode()):
        raise ApiError(errors.SIGNATURE_ERROR)
    return creds.api_key


def login_timestamp_ms(raw: object) -> int:
    """Interpret a login ``timestamp`` as seconds or milliseconds (⚠ one SDK sends ms): accept both."""
    value = int(str(raw).strip())
    return value if value >= 10**11 else value * 1000


def verify_ws_login(
    args: Mapping[str, object],
    secrets: Mapping[str, str],
    now_ms: int,
    recv_window_ms: int,
) -> str:
    """Verify one login ``args`` entry; return the api key or raise :class:`ApiError`.

    The sign is checked against the timestamp *exactly as sent* (``str()`` of the JSON value), which is what
    the client signed, so second and millisecond timestamps both verify. A seconds timestamp is coarse by up
    to a second, so the freshness window gets that much slack.
    """
    api_key = str(args.get("apiKey") or "").strip()
    if not api_key:
        raise ApiError(errors.API_KEY_EMPTY)
    secret = secrets.get(api_key)
    if secret is None:
        raise ApiError(errors.API_KEY_EMPTY, "api-key is invalid")
    nonce = str(args.get("nonce") or "")
    raw_ts = args.get("timestamp")
    sign = str(args.get("sign") or "").strip().lower()
    if not nonce or raw_ts is None or not sign:
        raise ApiError(errors.SIGNATURE_ERROR, "Signature Error: nonce, timestamp and sign are required")
    check_nonce(nonce)
    try:
        ts_ms = login_timestamp_ms(raw_ts)
    except ValueError:
        raise ApiError(errors.SIGNATURE_ERROR, "Signature Error: bad timestamp") from None
    if abs(now_ms - ts_ms) > recv_window_ms + 1000:
        raise ApiError(errors.SIGNATURE_ERROR, "Signature Error: timestamp outside the receive window")
    ts_text = str(raw_ts).strip()
    if not hmac.compare_digest(expected_login_sign(api_key, secret, nonce, ts_text).encode(), sign.encode()):
        raise ApiError(errors.SIGNATURE_ERROR)
    return api_key
