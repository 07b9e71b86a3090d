"""A tiny scripted Bitunix-like HTTP server on 127.0.0.1 for transport tests.

Deliberately independent of the client code: it verifies signatures with its
own hashlib calls over the *raw* bytes it receives. Scenario behaviour is a
per-path handler function, so each test states exactly what the server does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Recorded], Awaitable[web.StreamResponse] | web.StreamResponse]


def ok(data: Any = None) -> web.Response:
    return web.json_response({"code": 0, "msg": "Success", "data": data})


def err(code: int, msg: str = "error") -> web.Response:
    return web.json_response({"code": code, "msg": msg, "data": None})


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class FakeBitunix:
    api_key: str = "test-api-key-123456"
    secret: str = "test-secret-abcdef"
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""

    def expected_sign(self, rec: Recorded) -> str:
        query = "".join(k + rec.query[k] for k in sorted(rec.query))
        digest = _sha(
            rec.headers.get("nonce", "")
            + rec.headers.get("timestamp", "")
            + rec.headers.get("api-key", "")
            + query
            + rec.body.decode()
        )
        return _sha(digest + self.secret)

    def count(self, path_suffix: str) -> int:
        return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        self.requests.append(rec)
        suffix = request.path.removeprefix("/api/v1/futures")
        if not suffix.startswith("/market/"):
            if rec.headers.get("api-key") != self.api_key:
                return err(10003, "api-key invalid")
            if rec.headers.get("sign") != self.expected_sign(rec):
                return err(10007, "signature error")
        handler = self.handlers.get(suffix)
        if handler is None:
            return web.Response(status=404, text="no such path")
        result = handler(rec)
        if not isinstance(result, web.StreamResponse):
            result = await result
        return result


@asynccontextmanager
async def serve(fake: FakeBitunix) -> AsyncIterator[FakeBitunix]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def body_json(rec: Recorded) -> Any:
    return json.loads(rec.body)
