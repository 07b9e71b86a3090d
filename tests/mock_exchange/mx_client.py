"""Test-side Bitunix client for the mock exchange tests.

It signs requests straight from the reference page (two SHA-256 hex digests over nonce + timestamp + key +
sorted query + raw body) and deliberately imports nothing from the mock, so the tests check the mock's
signature verification against an independent implementation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
API = "/api/v1/futures/"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def page_sign(api_key: str, secret: str, nonce: str, timestamp: str, query: dict[str, Any], body: str) -> str:
    """The signature exactly as the reference page describes it."""
    query_str = "".join(f"{k}{v}" for k, v in sorted(query.items()) if v is not None and v != "")
    digest = sha256_hex(nonce + timestamp + api_key + query_str + body)
    return sha256_hex(digest + secret)


def login_sign(api_key: str, secret: str, nonce: str, timestamp: str) -> str:
    return sha256_hex(sha256_hex(nonce + timestamp + api_key) + secret)


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run a scenario coroutine with a hard timeout (pytest-asyncio is not installed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class SignedClient:
    """Minimal signed REST client over an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str = "testkey",
                 secret: str = "testsecret") -> None:
        self.session = session
        self.base_url = base_url
        self.api_key = api_key
        self.secret = secret

    def headers(self, query: dict[str, Any], body: str, *, timestamp: int | None = None,
                nonce: str | None = None, sign: str | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
        nonce = nonce or uuid.uuid4().hex
        return {
            "api-key": self.api_key,
            "nonce": nonce,
            "timestamp": ts,
            "sign": sign or page_sign(self.api_key, self.secret, nonce, ts, query, body),
            "Content-Type": "application/json",
        }

    async def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        params = {k: str(v) for k, v in (params or {}).items()}
        async with self.session.get(self.base_url + API + path, params=params,
                                    headers=self.headers(params, "", **kw)) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        raw = json.dumps(body, separators=(",", ":"))
        async with self.session.post(self.base_url + API + path, data=raw.encode(),
                                     headers=self.headers({}, raw, **kw)) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def public(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.session.get(self.base_url + API + path, params=params or {}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def market_order(self, side: str, qty: str, **extra: Any) -> dict[str, Any]:
        body = {"symbol": "BTCUSDT", "side": side, "tradeSide": "OPEN", "qty": qty, "orderType": "MARKET", **extra}
        return await self.post("trade/place_order", body)

    async def account(self) -> dict[str, Any]:
        res = await self.get("account", {"marginCoin": "USDT"})
        assert res["code"] == 0, res
        data = res["data"]  # docs (default dialect) wrap it in a list, the SDK reads an object
        return data[0] if isinstance(data, list) else data


@asynccontextmanager
async def signed_client(base_url: str, api_key: str = "testkey", secret: str = "testsecret",
                        timeout: float = 10.0) -> AsyncIterator[SignedClient]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        yield SignedClient(session, base_url, api_key, secret)


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def recv_until(ws: aiohttp.ClientWebSocketResponse, predicate: Any, timeout: float = 5.0) -> Any:
    """Receive JSON messages until one satisfies ``predicate``; skips everything else."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no matching message")
        msg = await ws.receive(timeout=remaining)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise ConnectionError(f"websocket closed: {msg}")
            continue
        try:
            data = json.loads(msg.data)
        except ValueError:
            continue
        if isinstance(data, dict) and predicate(data):
            return data


async def ws_login(ws: aiohttp.ClientWebSocketResponse, api_key: str = "testkey", secret: str = "testsecret",
                   timestamp: int | str | None = None) -> dict[str, Any]:
    ts = timestamp if timestamp is not None else int(time.time())
    nonce = uuid.uuid4().hex
    await ws.send_json({"op": "login", "args": [{"apiKey": api_key, "timestamp": ts, "nonce": nonce,
                                                 "sign": login_sign(api_key, secret, nonce, str(ts))}]})
    return await recv_until(ws, lambda m: m.get("op") == "login")
