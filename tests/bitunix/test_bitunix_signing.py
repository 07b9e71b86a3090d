"""Signing reproduces the contract's test vectors and wire-format rules."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from laptop_agents.bitunix.signing import (
    canonical_query,
    encode_body,
    new_nonce,
    normalize_params,
    rest_signature,
    signed_headers,
    ws_login_message,
    ws_login_signature,
)

KEY, SECRET = "testkey", "testsecret"
NONCE, TS = "0123456789abcdef0123456789abcdef", "1700000000000"
GET_VECTOR = "23ba5740647ced15aca11a177121508abef5f6ca87d2056e28ae64f1e30cfbba"
POST_VECTOR = "f49d5cb15ac10052807397f8b02fea61433c3d96b150b6236f87d902427aa532"
POST_BODY = {"symbol": "BTCUSDT", "side": "BUY", "tradeSide": "OPEN", "qty": "0.001", "orderType": "MARKET"}


def test_get_vector_from_the_contract() -> None:
    query = canonical_query({"symbol": "BTCUSDT", "marginCoin": "USDT"})
    assert query == "marginCoinUSDTsymbolBTCUSDT"
    sign = rest_signature(api_key=KEY, secret_key=SECRET, nonce=NONCE, timestamp=TS, query_params=query)
    assert sign == GET_VECTOR


def test_post_vector_from_the_contract_with_our_body_encoding() -> None:
    body = encode_body(POST_BODY)
    assert body == '{"symbol":"BTCUSDT","side":"BUY","tradeSide":"OPEN","qty":"0.001","orderType":"MARKET"}'
    sign = rest_signature(api_key=KEY, secret_key=SECRET, nonce=NONCE, timestamp=TS, body=body)
    assert sign == POST_VECTOR


def test_signed_headers_carry_the_vector_and_required_fields() -> None:
    headers = signed_headers(
        api_key=KEY,
        secret_key=SECRET,
        nonce=NONCE,
        timestamp_ms=1700000000000,
        params={"marginCoin": "USDT", "symbol": "BTCUSDT"},
    )
    assert headers["sign"] == GET_VECTOR
    assert headers["api-key"] == KEY
    assert headers["nonce"] == NONCE
    assert headers["timestamp"] == TS
    assert headers["Content-Type"] == "application/json"
    assert SECRET not in json.dumps(headers)


def test_query_drops_null_and_empty_values_and_sorts_by_ascii() -> None:
    params = {"symbol": "BTCUSDT", "orderId": None, "clientId": "", "limit": 10, "Zeta": "z"}
    assert canonical_query(params) == "Zetazlimit10symbolBTCUSDT"
    assert normalize_params(params) == {"symbol": "BTCUSDT", "limit": "10", "Zeta": "z"}


def test_query_values_are_raw_not_url_encoded() -> None:
    assert canonical_query({"symbols": "BTCUSDT,ETHUSDT"}) == "symbolsBTCUSDT,ETHUSDT"


def test_param_rendering_of_bools_and_decimals() -> None:
    assert normalize_params({"a": True, "b": False, "c": Decimal("1E+1")}) == {
        "a": "true",
        "b": "false",
        "c": "10",
    }


def test_body_is_compact_and_decimals_become_plain_strings() -> None:
    assert encode_body({"qty": Decimal("0.00010"), "n": 1}) == '{"qty":"0.00010","n":1}'
    assert encode_body(None) == ""


def test_nonce_is_32_random_hex_chars() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)


def test_ws_login_signature_is_double_sha256() -> None:
    expected = hashlib.sha256(
        (hashlib.sha256((NONCE + "1700000000" + KEY).encode()).hexdigest() + SECRET).encode()
    ).hexdigest()
    assert ws_login_signature(api_key=KEY, secret_key=SECRET, nonce=NONCE, timestamp=1700000000) == expected
    msg = ws_login_message(api_key=KEY, secret_key=SECRET, nonce=NONCE, timestamp_sec=1700000000)
    assert msg["op"] == "login"
    (arg,) = msg["args"]
    assert arg == {"apiKey": KEY, "timestamp": 1700000000, "nonce": NONCE, "sign": expected}
