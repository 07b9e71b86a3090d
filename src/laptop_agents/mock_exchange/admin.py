"""The admin HTTP API a test drives the mock with (not part of Bitunix; plain JSON, HTTP 400 on bad input).

Endpoints
  * ``GET  /admin/faults`` → ``{"faults": {...FaultSettings}}``
  * ``POST /admin/faults`` body: any subset of :class:`~.faults.FaultSettings` fields, plus the one-shot
    action ``"ws_drop_now": true`` → ``{"faults": {...}, "wsDropped": n | null}``
  * ``POST /admin/reset`` body (optional) ``{"faults": true, "accounts": true, "ledger": true,
    "rate_limits": true}`` (each defaults to true) → ``{"reset": [...]}``. Accounts go back to their
    starting balances with no orders, positions or used clientIds; the price path keeps running.
  * ``GET  /admin/ledger?type=fill,cancel&account=testkey&since=<seq>`` →
    ``{"events": [...], "accounts": {apiKey: summary}, "lastSeq": n}``
  * ``POST /admin/ws/drop`` body ``{"mode": "abort"|"close"}`` → ``{"dropped": n}``
  * ``POST /admin/price`` body ``{"price": "96000", "symbol": "BTCUSDT"}``: the next tick is exactly that
    price (the market clock steps one tick so it happens now) → ``{"symbol", "price", "marketTime"}``
  * ``POST /admin/clock`` body ``{"advance_ms": 60000}`` → ``{"marketTime": ms}``
  * ``GET  /admin/state`` → clocks, prices, regimes, connection counts, accounts, faults
  * ``POST /admin/accounts`` body ``{"api_key", "secret", "balance", "position_mode"}`` → account summary
  * ``GET  /admin/holds?wait_s=5&after=<total>`` → ``{"holds": [{id, path, phase, account, body, heldAt}],
    "total": n}``: the REST calls parked by the ``rest_hold_*`` faults right now, waiting up to ``wait_s``
    for one (and, with ``after``, for one newer than that total)
  * ``POST /admin/holds/release`` body ``{"action": "proceed"|"drop", "id": n}`` (no id: all) →
    ``{"released": n}``
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from .config import AccountConfig

if TYPE_CHECKING:
    from .server import MockExchange


class AdminError(Exception):
    pass


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise AdminError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


def _ok(data: Any) -> web.Response:
    return web.json_response(data, dumps=lambda o: json.dumps(o, default=str))


class AdminApi:
    """Routes under ``/admin`` for one :class:`~.server.MockExchange`."""

    def __init__(self, exchange: MockExchange) -> None:
        self.ex = exchange

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/faults", self._wrap(self.get_faults)),
            web.post("/admin/faults", self._wrap(self.set_faults)),
            web.post("/admin/reset", self._wrap(self.reset)),
            web.get("/admin/ledger", self._wrap(self.ledger)),
            web.post("/admin/ws/drop", self._wrap(self.drop_ws)),
            web.post("/admin/price", self._wrap(self.set_price)),
            web.post("/admin/clock", self._wrap(self.advance_clock)),
            web.get("/admin/state", self._wrap(self.state)),
            web.post("/admin/accounts", self._wrap(self.add_account)),
            web.get("/admin/holds", self._wrap(self.get_holds)),
            web.post("/admin/holds/release", self._wrap(self.release_holds)),
        ]

    @staticmethod
    def _wrap(fn: Any) -> Any:
        async def handle(request: web.Request) -> web.Response:
            try:
                return _ok(await fn(request))
            except (AdminError, ValueError, ValidationError) as exc:
                return web.json_response({"error": str(exc)}, status=400)

        return handle

    async def get_faults(self, request: web.Request) -> Any:
        return {"faults": self.ex.faults.settings.model_dump()}

    async def set_faults(self, request: web.Request) -> Any:
        body = await _json_body(request)
        drop_now = bool(body.pop("ws_drop_now", False))
        settings = self.ex.set_faults(**body)
        dropped = await self.ex.drop_ws(settings.ws_drop_mode) if drop_now else None
        return {"faults": settings.model_dump(), "wsDropped": dropped}

    async def reset(self, request: web.Request) -> Any:
        body = await _json_body(request)
        parts = {k: bool(body.get(k, True)) for k in ("faults", "accounts", "ledger", "rate_limits")}
        self.ex.reset(**parts)
        return {"reset": [k for k, v in parts.items() if v]}

    async def ledger(self, request: web.Request) -> Any:
        q = request.query
        types = [t for t in (q.get("type") or "").split(",") if t] or None
        since = q.get("since")
        try:
            since_seq = int(since) if since else None
        except ValueError:
            raise AdminError("since must be an integer") from None
        return self.ex.ledger_snapshot(types=types, account=q.get("account") or None, since=since_seq)

    async def drop_ws(self, request: web.Request) -> Any:
        body = await _json_body(request)
        mode = body.get("mode", "abort")
        if mode not in ("abort", "close"):
            raise AdminError("mode must be abort or close")
        return {"dropped": await self.ex.drop_ws(mode)}

    async def set_price(self, request: web.Request) -> Any:
        body = await _json_body(request)
        symbol = body.get("symbol") or next(iter(self.ex.market.symbols))
        try:
            price = Decimal(str(body["price"]))
        except (KeyError, InvalidOperation):
            raise AdminError("price (a number) is required") from None
        self.ex.set_price(price, symbol)
        return {"symbol": symbol, "price": str(self.ex.market.last_price(symbol)), "marketTime": self.ex.market_now()}

    async def advance_clock(self, request: web.Request) -> Any:
        body = await _json_body(request)
        try:
            ms = int(body["advance_ms"])
        except (KeyError, TypeError, ValueError):
            raise AdminError("advance_ms (an integer) is required") from None
        self.ex.advance_clock(ms)
        return {"marketTime": self.ex.market_now()}

    async def state(self, request: web.Request) -> Any:
        return self.ex.state()

    async def add_account(self, request: web.Request) -> Any:
        body = await _json_body(request)
        cfg = AccountConfig.model_validate(body)
        self.ex.add_account(cfg)
        return self.ex.account_summary(cfg.api_key)

    async def get_holds(self, request: web.Request) -> Any:
        try:
            wait_s = min(float(request.query.get("wait_s") or 0), 60.0)
            after = int(request.query.get("after") or 0)
        except ValueError:
            raise AdminError("wait_s must be a number and after an integer") from None
        held = await self.ex.holds.wait_any(wait_s, after)
        return {"holds": [h.view() for h in held], "total": self.ex.holds.total}

    async def release_holds(self, request: web.Request) -> Any:
        body = await _json_body(request)
        hold_id = body.get("id")
        if hold_id is not None and not isinstance(hold_id, int):
            raise AdminError("id must be an integer")
        released = self.ex.holds.release(body.get("action", "proceed"), hold_id)
        self.ex.ledger.record("admin", action="release_holds", released=released, hold_action=body.get("action", "proceed"))
        return {"released": released}
