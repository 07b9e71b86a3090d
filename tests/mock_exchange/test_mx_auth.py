"""Signature contract: the page's test vectors, and the exchange's verification over real HTTP."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import aiohttp
import pytest

from laptop_agents.mock_exchange import auth
from laptop_agents.mock_exchange.errors import ApiError

from .mx_client import API, page_sign, run, signed_client

VECTOR_NONCE = "0123456789abcdef0123456789abcdef"
VECTOR_TS = "1700000000000"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_page_vector_get_computed_from_the_algorithm() -> None:
    # Computed here from the page's formula, not from any helper of the mock or the client.
    query = "marginCoinUSDTsymbolBTCUSDT"
    digest = _sha(VECTOR_NONCE + VECTOR_TS + "testkey" + query + "")
    assert _sha(digest + "testsecret") == "23ba5740647ced15aca11a177121508abef5f6ca87d2056e28ae64f1e30cfbba"


def test_page_vector_post_computed_from_the_algorithm() -> None:
    body = '{"symbol":"BTCUSDT","side":"BUY","tradeSide":"OPEN","qty":"0.001","orderType":"MARKET"}'
    digest = _sha(VECTOR_NONCE + VECTOR_TS + "testkey" + "" + body)
    assert _sha(digest + "testsecret") == "f49d5cb15ac10052807397f8b02fea61433c3d96b150b6236f87d902427aa532"


def test_mock_verifier_accepts_both_page_vectors() -> None:
    secrets = {"testkey": "testsecret"}
    now = int(VECTOR_TS)
    get = auth.RestCredentials("testkey", VECTOR_NONCE, VECTOR_TS,
                               "23ba5740647ced15aca11a177121508abef5f6ca87d2056e28ae64f1e30cfbba")
    assert auth.verify_rest_request(get, secrets, [("symbol", "BTCUSDT"), ("marginCoin", "USDT")], b"", now, 5000)
    body = b'{"symbol":"BTCUSDT","side":"BUY","tradeSide":"OPEN","qty":"0.001","orderType":"MARKET"}'
    post = auth.RestCredentials("testkey", VECTOR_NONCE, VECTOR_TS,
                                "f49d5cb15ac10052807397f8b02fea61433c3d96b150b6236f87d902427aa532")
    assert auth.verify_rest_request(post, secrets, [], body, now, 5000) == "testkey"


def test_canonical_query_sorts_and_drops_empty_values() -> None:
    assert auth.canonical_query([("symbol", "BTCUSDT"), ("marginCoin", "USDT"), ("limit", "")]) == \
        "marginCoinUSDTsymbolBTCUSDT"


@pytest.mark.parametrize(
    ("creds", "code"),
    [
        (auth.RestCredentials("", "n", "1", "s"), 10003),
        (auth.RestCredentials("nokey", "n", "1", "s"), 10003),
        (auth.RestCredentials("testkey", "", "1700000000000", "s"), 10007),
        (auth.RestCredentials("testkey", "n", "abc", "s"), 10007),
        (auth.RestCredentials("testkey", "n", "1700000000000", "0" * 64), 10007),
        (auth.RestCredentials("testkey", "n", "1699999990000", "0" * 64), 10007),
    ],
)
def test_verifier_refusals(creds: auth.RestCredentials, code: int) -> None:
    with pytest.raises(ApiError) as info:
        auth.verify_rest_request(creds, {"testkey": "testsecret"}, [], b"", 1700000000000, 5000)
    assert info.value.code == code


def test_ws_login_accepts_seconds_and_milliseconds() -> None:
    secrets = {"testkey": "testsecret"}
    now_ms = 1700000000500
    for ts in (1700000000, 1700000000400, "1700000000"):
        sign = _sha(_sha(VECTOR_NONCE + str(ts) + "testkey") + "testsecret")
        args = {"apiKey": "testkey", "timestamp": ts, "nonce": VECTOR_NONCE, "sign": sign}
        assert auth.verify_ws_login(args, secrets, now_ms, 5000) == "testkey"
    stale = {"apiKey": "testkey", "timestamp": 1690000000, "nonce": VECTOR_NONCE,
             "sign": _sha(_sha(VECTOR_NONCE + "1690000000" + "testkey") + "testsecret")}
    with pytest.raises(ApiError):
        auth.verify_ws_login(stale, secrets, now_ms, 5000)


# --- over HTTP -------------------------------------------------------------------------------------------


def test_signed_get_succeeds(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            res = await c.get("account", {"marginCoin": "USDT"})
            assert res["code"] == 0 and res["msg"] == "Success"
            assert res["data"][0]["marginCoin"] == "USDT"
            assert res["data"][0]["available"] == "10000"

    run(scenario())


def test_signed_post_succeeds_and_the_raw_body_is_what_is_verified(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            ok = await c.post("account/change_leverage", {"symbol": "BTCUSDT", "leverage": 10, "marginCoin": "USDT"})
            assert ok["code"] == 0, ok
            # Sign compact JSON but send the same object with spaces: the server hashes the raw bytes.
            body = {"symbol": "BTCUSDT", "leverage": 5, "marginCoin": "USDT"}
            compact = json.dumps(body, separators=(",", ":"))
            spaced = json.dumps(body)
            headers = c.headers({}, compact)
            async with c.session.post(mx.rest_url + API + "account/change_leverage", data=spaced.encode(),
                                      headers=headers) as resp:
                res = await resp.json()
            assert resp.status == 200 and res["code"] == 10007 and res["data"] is None

    run(scenario())


def test_bad_signature_is_10007(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            res = await c.get("account", {"marginCoin": "USDT"}, sign="f" * 64)
            assert res == {"code": 10007, "msg": res["msg"], "data": None}
            wrong_secret = await signed_client_call(mx.rest_url)
            assert wrong_secret["code"] == 10007

    async def signed_client_call(url: str) -> dict:
        async with signed_client(url, secret="not-the-secret") as c:
            return await c.get("account", {"marginCoin": "USDT"})

    run(scenario())


def test_query_params_are_part_of_the_signature(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            headers = c.headers({"marginCoin": "USDT"}, "")  # signed without symbol
            async with c.session.get(mx.rest_url + API + "account/get_leverage_margin_mode",
                                     params={"marginCoin": "USDT", "symbol": "BTCUSDT"}, headers=headers) as resp:
                assert (await resp.json())["code"] == 10007

    run(scenario())


def test_stale_and_future_timestamps_are_rejected(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            now = int(time.time() * 1000)
            stale = await c.get("account", {"marginCoin": "USDT"}, timestamp=now - 30_000)
            future = await c.get("account", {"marginCoin": "USDT"}, timestamp=now + 30_000)
            edge = await c.get("account", {"marginCoin": "USDT"}, timestamp=now - 2_000)
            assert stale["code"] == 10007 and "receive window" in stale["msg"]
            assert future["code"] == 10007
            assert edge["code"] == 0

    run(scenario())


def test_receive_window_is_configurable() -> None:
    from laptop_agents.mock_exchange.testing import running_mock_exchange

    with running_mock_exchange(recv_window_ms=60_000) as mx:
        async def scenario() -> None:
            async with signed_client(mx.rest_url) as c:
                res = await c.get("account", {"marginCoin": "USDT"}, timestamp=int(time.time() * 1000) - 30_000)
                assert res["code"] == 0

        run(scenario())


def test_missing_or_unknown_api_key_is_10003(mx) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.get(mx.rest_url + API + "account", params={"marginCoin": "USDT"}) as resp:
                res = await resp.json()
            assert resp.status == 200 and res["code"] == 10003 and res["data"] is None
        async with signed_client(mx.rest_url, api_key="somebody-else") as c:
            assert (await c.get("account"))["code"] == 10003

    run(scenario())


def test_legacy_time_header_is_accepted(mx) -> None:
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            headers = c.headers({"marginCoin": "USDT"}, "")
            headers["time"] = headers.pop("timestamp")
            async with c.session.get(mx.rest_url + API + "account?marginCoin=USDT", headers=headers) as resp:
                assert (await resp.json())["code"] == 0

    run(scenario())


def test_nonce_and_sign_use_the_same_timestamp_string(mx) -> None:
    """A client that signs one timestamp and sends another is caught."""
    async def scenario() -> None:
        async with signed_client(mx.rest_url) as c:
            now = int(time.time() * 1000)
            nonce = uuid.uuid4().hex
            sign = page_sign("testkey", "testsecret", nonce, str(now - 1), {}, "")
            headers = {"api-key": "testkey", "nonce": nonce, "timestamp": str(now), "sign": sign}
            async with c.session.get(mx.rest_url + API + "account", headers=headers) as resp:
                assert (await resp.json())["code"] == 10007

    run(scenario())
