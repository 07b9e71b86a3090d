"""The futures REST API under ``/api/v1/futures/``: endpoints, auth, rate limits, the envelope, the ledger.

Each endpoint is a small synchronous function from an :class:`~.parsing.ApiRequest` to the envelope's
``data``; one
wrapper (:meth:`RestApi._wrap`) does what every endpoint shares, in the order a real exchange does it:
rate limit, authentication (raw body bytes and sorted query), parse, run, answer HTTP 200 with
``{code,msg,data}`` whatever the outcome, and record trading requests in the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors, wire
from .auth import RestCredentials, verify_rest_request
from .engine import OrderRef
from .errors import ApiError
from .klines import BY_REST, BY_WS
from .models import MarginMode, PositionMode
from .parsing import ApiRequest, parse_body, parse_enum, parse_place_order, raw_for_ledger
from .tpsl import TpslDesk

if TYPE_CHECKING:
    from .server import MockExchange

API_PREFIX = "/api/v1/futures/"
MARGIN_COIN = "USDT"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def envelope(code: int, msg: str, data: Any) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


# --- endpoints ------------------------------------------------------------------------------------------

Handler = Callable[[ApiRequest], Any]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # relative to API_PREFIX
    group: str  # rate-limit group
    private: bool
    ledger: str | None  # ledger record type for requests that change state
    fn: Handler


def _page(items: list[Any], skip: int, limit: int) -> list[Any]:
    return items[skip : skip + limit]


class RestApi:
    """The REST endpoints of one :class:`~.server.MockExchange`."""

    def __init__(self, exchange: MockExchange) -> None:
        self.ex = exchange
        self.endpoints = [
            Endpoint("GET", "market/trading_pairs", "market", False, None, self.trading_pairs),
            Endpoint("GET", "market/kline", "market", False, None, self.kline),
            Endpoint("GET", "market/tickers", "market", False, None, self.tickers),
            Endpoint("GET", "market/depth", "market", False, None, self.depth),
            Endpoint("GET", "market/funding_rate", "market", False, None, self.funding_rate),
            Endpoint("GET", "account", "query", True, None, self.account),
            Endpoint("POST", "account/change_leverage", "query", True, "request", self.change_leverage),
            Endpoint("POST", "account/change_margin_mode", "query", True, "request", self.change_margin_mode),
            Endpoint("POST", "account/change_position_mode", "query", True, "request", self.change_position_mode),
            Endpoint("GET", "account/get_leverage_margin_mode", "query", True, None, self.get_leverage_margin_mode),
            Endpoint("POST", "trade/place_order", "place_order", True, "order_request", self.place_order),
            Endpoint("POST", "trade/cancel_orders", "cancel", True, "request", self.cancel_orders),
            Endpoint("POST", "trade/cancel_all_orders", "cancel", True, "request", self.cancel_all_orders),
            Endpoint("POST", "trade/close_all_position", "flash_close", True, "request", self.close_all_position),
            Endpoint("POST", "trade/flash_close_position", "flash_close", True, "request", self.flash_close_position),
            Endpoint("GET", "trade/get_pending_orders", "query", True, None, self.get_pending_orders),
            Endpoint("GET", "trade/get_order_detail", "query", True, None, self.get_order_detail),
            Endpoint("GET", "trade/get_history_orders", "query", True, None, self.get_history_orders),
            Endpoint("GET", "trade/get_history_trades", "query", True, None, self.get_history_trades),
            Endpoint("GET", "position/get_pending_positions", "query", True, None, self.get_pending_positions),
            Endpoint("POST", "tpsl/place_order", "tpsl", True, "request", self._tpsl("place")),
            Endpoint("POST", "tpsl/modify_order", "tpsl", True, "request", self._tpsl("modify")),
            Endpoint("POST", "tpsl/cancel_order", "tpsl", True, "request", self._tpsl("cancel")),
            Endpoint("POST", "tpsl/position/place_order", "tpsl", True, "request", self._tpsl("place_position")),
            Endpoint("POST", "tpsl/position/modify_order", "tpsl", True, "request", self._tpsl("modify_position")),
            Endpoint("GET", "tpsl/get_pending_orders", "tpsl", True, None, self.tpsl_pending),
        ]

    def routes(self) -> list[web.RouteDef]:
        return [web.route(ep.method, API_PREFIX + ep.path, self._wrap(ep)) for ep in self.endpoints]

    # --- the shared pipeline ----------------------------------------------------------------------------

    def _wrap(self, ep: Endpoint) -> Callable[[web.Request], Any]:
        ex = self.ex

        async def handle(request: web.Request) -> web.Response:
            ex.sync()
            raw = await request.read()
            remote = request.remote or "127.0.0.1"
            header_key = (request.headers.get("api-key") or "").strip() or None
            api_key: str | None = None
            body: dict[str, Any] = {}
            try:
                client = remote if ep.group == "market" else (header_key or remote)
                if ex.faults.force_rate_limit() or not ex.rate_limit_allows(ep.group, client):
                    raise ApiError(ex.config.rate_limit_code)
                if ep.private:
                    api_key = verify_rest_request(
                        RestCredentials.from_headers(request.headers),
                        ex.engine.secrets(),
                        request.query.items(),
                        raw,
                        ex.wall.now_ms(),
                        ex.config.recv_window_ms,
                    )
                if ep.method == "POST":
                    body = parse_body(raw)
                data = ep.fn(ApiRequest(request.query, body, api_key, remote))
                result = envelope(errors.SUCCESS, "Success", data)
            except ApiError as exc:
                result = envelope(exc.code, exc.msg, None)
            if ep.ledger:
                ex.record_request(ep.ledger, ep.path, api_key or header_key, body or raw_for_ledger(raw), result)
            return web.json_response(result, dumps=dumps)

        return handle

    # --- market -----------------------------------------------------------------------------------------

    def _symbols_filter(self, r: ApiRequest) -> list[str]:
        text = r.text("symbols") or r.text("symbol")
        known = list(self.ex.market.symbols)
        if not text:
            return known
        return [s for s in (x.strip() for x in text.split(",")) if s in self.ex.market.symbols]

    def _market(self, r: ApiRequest) -> Any:
        symbol = r.text("symbol", required=True)
        m = self.ex.market.get(symbol or "")
        if m is None:
            raise ApiError(errors.MARKET_NOT_EXISTS, f"Market not exists: {symbol!r}")
        return m

    def trading_pairs(self, r: ApiRequest) -> Any:
        return [wire.trading_pair(self.ex.market.symbols[s].spec) for s in self._symbols_filter(r)]

    def kline(self, r: ApiRequest) -> Any:
        m = self._market(r)
        name = r.text("interval", required=True) or ""
        interval = BY_REST.get(name) or BY_WS.get(name)
        if interval is None:
            raise ApiError(errors.PARAMETER_ERROR, f"unknown interval {name!r}")
        kline_type = (r.text("type") or "LAST_PRICE").upper()
        if kline_type not in ("LAST_PRICE", "MARK_PRICE"):
            raise ApiError(errors.PARAMETER_ERROR, "type must be LAST_PRICE or MARK_PRICE")
        limit = r.integer("limit", 100, lo=1) or 100
        candles = m.book.candles(
            interval,
            self.ex.market_now(),
            start_ms=r.integer("startTime", None, lo=0),
            end_ms=r.integer("endTime", None, lo=0),
            limit=min(limit, 200),
        )
        rows = [m.fmt.rest(c, kline_type) for c in candles]
        if self.ex.config.kline_order == "desc":
            rows.reverse()
        return rows

    def tickers(self, r: ApiRequest) -> Any:
        return [self.ex.market.ticker(s) for s in self._symbols_filter(r)]

    def depth(self, r: ApiRequest) -> Any:
        m = self._market(r)
        text = (r.text("limit") or "max").strip().lower()
        if text == "max":
            limit = 200
        elif text.isdigit():
            limit = int(text)
        else:
            raise ApiError(errors.PARAMETER_ERROR, "limit must be 1, 5, 15, 50 or max")
        asks, bids = self.ex.market.depth(m.spec.symbol, limit)
        return {"asks": asks, "bids": bids}

    def funding_rate(self, r: ApiRequest) -> Any:
        m = self._market(r)
        last = m.fmt.price(m.path.last_tick.price)
        return {
            "symbol": m.spec.symbol,
            "markPrice": last,
            "lastPrice": last,
            "fundingRate": wire.dec(self.ex.market.funding_rate),
        }

    # --- account ----------------------------------------------------------------------------------------

    def _margin_coin(self, r: ApiRequest) -> str:
        coin = r.text("marginCoin") or MARGIN_COIN
        if coin != MARGIN_COIN:
            raise ApiError(errors.PARAMETER_ERROR, f"unsupported marginCoin {coin!r}")
        return MARGIN_COIN

    def account(self, r: ApiRequest) -> Any:
        if r.text("marginCoin") is None:  # documented as required; the real exchange refuses without it
            raise ApiError(errors.PARAMETER_ERROR, "marginCoin is required")
        coin = self._margin_coin(r)
        eng = self.ex.engine
        acct = eng.account(r.api_key or "")
        data = wire.account_rest(
            acct,
            coin,
            eng.unrealized_pnl(acct, MarginMode.CROSS),
            eng.unrealized_pnl(acct, MarginMode.ISOLATION),
        )
        return [data] if self.ex.config.account_response == "list" else data

    def change_leverage(self, r: ApiRequest) -> Any:
        coin = self._margin_coin(r)
        symbol = self.ex.engine.spec(r.text("symbol", required=True)).symbol
        leverage = r.integer("leverage")
        if leverage is None:
            raise ApiError(errors.PARAMETER_ERROR, "leverage is required")
        events = self.ex.engine.change_leverage(r.api_key or "", symbol, leverage, self.ex.market_now())
        self.ex.dispatch(events)
        return {"symbol": symbol, "marginCoin": coin, "leverage": leverage}

    def change_margin_mode(self, r: ApiRequest) -> Any:
        coin = self._margin_coin(r)
        symbol = self.ex.engine.spec(r.text("symbol", required=True)).symbol
        mode = parse_enum(MarginMode, r.param("marginMode"), "marginMode")
        self.ex.engine.change_margin_mode(r.api_key or "", symbol, mode)
        return {"symbol": symbol, "marginCoin": coin, "marginMode": mode.value}

    def change_position_mode(self, r: ApiRequest) -> Any:
        mode = parse_enum(PositionMode, r.param("positionMode"), "positionMode")
        self.ex.engine.change_position_mode(r.api_key or "", mode)
        return {"positionMode": mode.value}

    def get_leverage_margin_mode(self, r: ApiRequest) -> Any:
        coin = self._margin_coin(r)
        eng = self.ex.engine
        symbol = eng.spec(r.text("symbol", required=True)).symbol
        acct = eng.account(r.api_key or "")
        return {
            "symbol": symbol,
            "marginCoin": coin,
            "leverage": eng.leverage_of(acct, symbol),
            "marginMode": eng.margin_mode_of(acct, symbol).value,
        }

    # --- trading ----------------------------------------------------------------------------------------

    def place_order(self, r: ApiRequest) -> Any:
        rejection = self.ex.faults.take_order_rejection()
        if rejection is not None:
            raise rejection
        req = parse_place_order(r.body)
        order, events = self.ex.engine.place_order(r.api_key or "", req, self.ex.market_now())
        self.ex.dispatch(events)
        return {"orderId": order.order_id, "clientId": order.client_id}

    def cancel_orders(self, r: ApiRequest) -> Any:
        symbol = r.text("symbol")
        if symbol:
            self.ex.engine.spec(symbol)
        raw_list = r.body.get("orderList")
        if not isinstance(raw_list, list) or not raw_list:
            raise ApiError(errors.PARAMETER_ERROR, "orderList must be a non-empty list")
        refs = []
        for item in raw_list:
            if not isinstance(item, dict) or not (item.get("orderId") or item.get("clientId")):
                raise ApiError(errors.PARAMETER_ERROR, "each orderList entry needs orderId or clientId")
            oid, cid = item.get("orderId"), item.get("clientId")
            refs.append(OrderRef(str(oid) if oid else None, str(cid) if cid else None))
        done, failed, events = self.ex.engine.cancel_orders(r.api_key or "", symbol, refs, self.ex.market_now())
        self.ex.dispatch(events)
        return {
            "successList": [{"orderId": o.order_id, "clientId": o.client_id} for o in done],
            "failureList": [
                {
                    "orderId": f.order_id,
                    "clientId": f.client_id,
                    "errorMsg": f.msg,
                    "errorCode": f.code if self.ex.config.cancel_error_code == "int" else str(f.code),
                }
                for f in failed
            ],
        }

    def cancel_all_orders(self, r: ApiRequest) -> Any:
        symbol = r.text("symbol")
        if symbol:
            self.ex.engine.spec(symbol)
        done, events = self.ex.engine.cancel_all_orders(r.api_key or "", symbol, self.ex.market_now())
        self.ex.dispatch(events)
        return {"successList": [{"orderId": o.order_id, "clientId": o.client_id} for o in done], "failureList": []}

    def close_all_position(self, r: ApiRequest) -> Any:
        symbol = r.text("symbol")
        if symbol:
            self.ex.engine.spec(symbol)
        closed, events = self.ex.engine.close_all_positions(r.api_key or "", symbol, self.ex.market_now())
        self.ex.dispatch(events)
        return {
            "successList": [{"positionId": p.position_id, "orderId": o.order_id} for p, o in closed],
            "failureList": [],
        }

    def flash_close_position(self, r: ApiRequest) -> Any:
        position_id = r.text("positionId", required=True) or ""
        pos, order, events = self.ex.engine.flash_close_position(r.api_key or "", position_id, self.ex.market_now())
        self.ex.dispatch(events)
        return {"positionId": pos.position_id, "orderId": order.order_id}

    # --- TP/SL (mock_exchange/tpsl.py) ------------------------------------------------------------------

    def _desk(self) -> TpslDesk:
        return TpslDesk(self.ex.engine, self.ex.config.tpsl_place_response)

    def _tpsl(self, action: str) -> Handler:
        def handler(r: ApiRequest) -> Any:
            if action.startswith("modify") and self.ex.faults.take_tpsl_modify_ignored():
                order_id = r.text("orderId") or self._desk().position_order_id(r)
                self.ex.ledger.record("fault", fault="tpsl_modify_ignored", account=r.api_key, orderId=order_id)
                return {"orderId": order_id}
            data, events = getattr(self._desk(), action)(r, self.ex.market_now())
            self.ex.dispatch(events)
            return data

        return handler

    def tpsl_pending(self, r: ApiRequest) -> Any:
        return self._desk().pending(r)

    # --- queries ----------------------------------------------------------------------------------------

    def _order_filters(self, r: ApiRequest, orders: list[Any]) -> list[Any]:
        symbol, oid, cid = r.text("symbol"), r.text("orderId"), r.text("clientId")
        status = r.text("status")
        otype = r.text("type") or r.text("orderType")
        start, end = r.integer("startTime", None), r.integer("endTime", None)
        out = [
            o
            for o in orders
            if (symbol is None or o.symbol == symbol)
            and (oid is None or o.order_id == oid)
            and (cid is None or o.client_id == cid)
            and (status is None or o.status.value == status.upper())
            and (otype is None or o.order_type.value == otype.upper())
            and (start is None or o.ctime >= start)
            and (end is None or o.ctime <= end)
        ]
        out.sort(key=lambda o: (o.ctime, o.order_id), reverse=True)
        return out

    def get_pending_orders(self, r: ApiRequest) -> Any:
        acct = self.ex.engine.account(r.api_key or "")
        orders = self._order_filters(r, acct.open_orders())
        skip = r.integer("skip", 0, lo=0) or 0
        limit = r.integer("limit", 100, lo=1, hi=100) or 100
        return {"orderList": [wire.order_rest(o) for o in _page(orders, skip, limit)], "total": len(orders)}

    def get_order_detail(self, r: ApiRequest) -> Any:
        oid, cid = r.text("orderId"), r.text("clientId")
        if not oid and not cid:
            raise ApiError(errors.PARAMETER_ERROR, "orderId or clientId is required")
        eng = self.ex.engine
        order = eng.find_order(eng.account(r.api_key or ""), oid, cid)
        if order is None:
            raise ApiError(errors.ORDER_NOT_FOUND)
        return wire.order_rest(order)

    def get_history_orders(self, r: ApiRequest) -> Any:
        acct = self.ex.engine.account(r.api_key or "")
        orders = self._order_filters(r, self.ex.engine.history_orders(acct))
        skip = r.integer("skip", 0, lo=0) or 0
        limit = r.integer("limit", 10, lo=1, hi=100) or 10
        return {"orderList": [wire.order_rest(o) for o in _page(orders, skip, limit)], "total": len(orders)}

    def get_history_trades(self, r: ApiRequest) -> Any:
        acct = self.ex.engine.account(r.api_key or "")
        # positionId is accepted and ignored, as the real exchange does (tradingiq's report)
        symbol, oid = r.text("symbol"), r.text("orderId")
        start, end = r.integer("startTime", None), r.integer("endTime", None)
        trades = [
            t
            for t in acct.trades
            if (symbol is None or t.symbol == symbol)
            and (oid is None or t.order_id == oid)
            and (start is None or t.ctime >= start)
            and (end is None or t.ctime <= end)
        ]
        trades.sort(key=lambda t: (t.ctime, t.trade_id), reverse=True)
        skip = r.integer("skip", 0, lo=0) or 0
        limit = r.integer("limit", 10, lo=1, hi=100) or 10
        cfg = self.ex.config
        rows = [wire.trade_rest(t, cfg.closing_fill_side, cfg.trade_side_field) for t in _page(trades, skip, limit)]
        return {"tradeList": rows, "total": len(trades)}

    def get_pending_positions(self, r: ApiRequest) -> Any:
        eng = self.ex.engine
        acct = eng.account(r.api_key or "")
        symbol, pid = r.text("symbol"), r.text("positionId")
        return [
            wire.position_rest(p, eng.price(p.symbol), eng.liquidation_price(acct, p), eng.mmr)
            for p in acct.positions.values()
            if (symbol is None or p.symbol == symbol) and (pid is None or p.position_id == pid)
        ]
