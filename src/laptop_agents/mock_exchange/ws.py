"""The WebSocket hub: ``/public/`` and ``/private/`` connections, subscriptions, pushes, WS faults.

Protocol (reference page, "WebSocket")
  * On open the server sends ``{"op":"connect","data":{"result":true}}`` (⚠ payload undocumented).
  * ``{"op":"ping","ping":<s>}`` is answered ``{"op":"ping","pong":<echo>,"ping":<server s>}``; protocol-level
    ping frames get a pong frame too.
  * ``subscribe`` / ``unsubscribe`` take ``args:[{"symbol","ch"}]`` and are not acknowledged. Market
    channels get a snapshot at once, then a push every ``push_interval_ms``.
  * Private login ``{"op":"login","args":[{apiKey,timestamp,nonce,sign}]}`` is acknowledged with
    ``{"op":"login","data":{"result":true}}`` (or ``result:false`` with ``code``/``msg``).

Kline pushes are ``{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":<market ms>,"data":{o,c,h,l,b,q}}``. When
a subscription's candle interval rolls over, the hub first pushes the *final* state of the previous candle
(``ts`` = its last millisecond) and then the new one, so the last push a client saw for an interval equals
the candle REST returns for it. Intervals skipped entirely between two pushes (very high time scales) are
not pushed: a client sees a gap and must backfill over REST, as it would after a disconnect.

Every outgoing push goes through the connection's ordered send queue, where the fault injector may drop
it, delay it, or precede it with garbage.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from .auth import verify_ws_login
from .errors import ApiError
from .klines import BY_WS, Interval
from .wire import dec, iso_ms, units

if TYPE_CHECKING:
    from .server import MockExchange

log = logging.getLogger(__name__)

PRIVATE_CHANNELS = frozenset({"order", "position", "balance", "tpsl"})
SYMBOL_CHANNELS = frozenset(
    {"ticker", "trade", "price", "depth_book1", "depth_book5", "depth_book15", "depth_books"}
)
DEPTH_LEVELS = {"depth_book1": 1, "depth_book5": 5, "depth_book15": 15, "depth_books": 50}
QUEUE_LIMIT = 10_000
CLOSE_TIMEOUT_S = 1.0
FUNDING_PERIOD_MS = 8 * 3600 * 1000


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass
class Subscription:
    ch: str
    symbol: str
    interval: Interval | None = None
    last_start: int | None = None  # kline: open time of the candle pushed last
    last_trade_ts: int | None = None  # trade: newest tick already pushed


@dataclass(frozen=True, slots=True)
class Outgoing:
    payload: str | bytes
    delay_s: float = 0.0


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    kind: str  # "public" | "private"
    account: str | None = None
    subs: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    queue: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)


class WsHub:
    """All live WebSocket connections of one exchange."""

    def __init__(self, exchange: MockExchange) -> None:
        self.ex = exchange
        self.connections: set[Connection] = set()

    @property
    def _stalled(self) -> bool:
        return self.ex.faults.settings.ws_stall

    def counts(self) -> dict[str, int]:
        out = {"public": 0, "private": 0}
        for conn in self.connections:
            out[conn.kind] += 1
        return out

    # --- connection lifecycle -----------------------------------------------------------------------------

    async def handle(self, request: web.Request, kind: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Connection(ws, request, kind)
        self.connections.add(conn)
        sender = asyncio.create_task(self._sender(conn), name=f"mock-ws-sender-{id(conn)}")
        idle = self.ex.config.ws_idle_timeout_s or None
        try:
            if not self._stalled:
                self._enqueue(conn, Outgoing(_dumps({"op": "connect", "data": {"result": True}})))
            while True:
                try:
                    msg = await ws.receive(timeout=idle)
                except TimeoutError:
                    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle timeout")
                    break
                if msg.type is WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.PING:
                    if not self._stalled:
                        await ws.pong(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.connections.discard(conn)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            if not ws.closed:
                await ws.close()
        return ws

    async def _sender(self, conn: Connection) -> None:
        ws = conn.ws
        try:
            while True:
                item = await conn.queue.get()
                if item.delay_s:
                    await asyncio.sleep(item.delay_s)
                if ws.closed:
                    return
                if isinstance(item.payload, bytes):
                    await ws.send_bytes(item.payload)
                else:
                    await ws.send_str(item.payload)
        except (ConnectionError, RuntimeError):
            return

    def _enqueue(self, conn: Connection, item: Outgoing) -> None:
        if conn.queue.qsize() >= QUEUE_LIMIT:
            # A consumer this slow would be cut off by a real exchange too.
            self._abort(conn)
            return
        conn.queue.put_nowait(item)

    def _push(self, conn: Connection, payload: str) -> None:
        """Send one push through the fault injector (drop / delay / garbage first)."""
        fate = self.ex.faults.push_fate()
        if fate.drop:
            return
        if fate.garbage is not None:
            self._enqueue(conn, Outgoing(fate.garbage, fate.delay_s))
        self._enqueue(conn, Outgoing(payload, fate.delay_s))

    @staticmethod
    def _abort(conn: Connection) -> None:
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    async def drop_all(self, mode: str = "abort") -> int:
        """Drop every connection: ``abort`` (TCP reset, no close frame) or ``close`` (close frame 1012)."""
        conns = list(self.connections)
        if mode == "close":
            await asyncio.gather(
                *(c.ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart") for c in conns),
                return_exceptions=True,
            )
        else:
            for conn in conns:
                self._abort(conn)
        return len(conns)

    async def close_all(self) -> None:
        await asyncio.gather(
            *(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown") for c in list(self.connections)),
            return_exceptions=True,
        )

    # --- client messages ----------------------------------------------------------------------------------

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        if op == "ping":
            if not self._stalled:
                reply = {"op": "ping", "pong": msg.get("ping"), "ping": self.ex.wall.now_ms() // 1000}
                self._enqueue(conn, Outgoing(_dumps(reply)))
        elif op in ("subscribe", "unsubscribe"):
            args = msg.get("args")
            for arg in args if isinstance(args, list) else []:
                if isinstance(arg, dict):
                    if op == "subscribe":
                        self._subscribe(conn, arg)
                    else:
                        self._unsubscribe(conn, arg)
        elif op == "login" and conn.kind == "private":
            self._login(conn, msg.get("args"))

    def _login(self, conn: Connection, args: Any) -> None:
        entry = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
        try:
            conn.account = verify_ws_login(
                entry, self.ex.engine.secrets(), self.ex.wall.now_ms(), self.ex.config.recv_window_ms
            )
            data: dict[str, Any] = {"result": True}
        except ApiError as exc:
            conn.account = None
            data = {"result": False, "code": exc.code, "msg": exc.msg}
        if not self._stalled:
            self._enqueue(conn, Outgoing(_dumps({"op": "login", "data": data})))

    def _subscribe(self, conn: Connection, arg: dict[str, Any]) -> None:
        ch = str(arg.get("ch") or "")
        symbol = str(arg.get("symbol") or "")
        interval: Interval | None = None
        if ch in PRIVATE_CHANNELS or ch == "tickers":
            symbol = ""
        else:
            if symbol not in self.ex.market.symbols:
                return
            if ch.startswith(("market_kline_", "mark_kline_")):
                interval = BY_WS.get(ch.split("_kline_", 1)[1])
                if interval is None:
                    return
            elif ch not in SYMBOL_CHANNELS:
                return
        key = (symbol, ch)
        if key in conn.subs or len(conn.subs) >= self.ex.config.max_subscriptions:
            return
        sub = Subscription(ch, symbol, interval)
        conn.subs[key] = sub
        if ch not in PRIVATE_CHANNELS and not self._stalled:
            for payload in self._market_messages(sub, self.ex.market_now(), {}, snapshot=True):
                self._push(conn, payload)

    @staticmethod
    def _unsubscribe(conn: Connection, arg: dict[str, Any]) -> None:
        ch = str(arg.get("ch") or "")
        symbol = "" if ch in PRIVATE_CHANNELS or ch == "tickers" else str(arg.get("symbol") or "")
        conn.subs.pop((symbol, ch), None)

    # --- pushes -------------------------------------------------------------------------------------------

    def push_cycle(self) -> None:
        """One round of market pushes to every subscription (called every ``push_interval_ms``)."""
        if self._stalled or not self.connections:
            return
        now = self.ex.market_now()
        cache: dict[Any, list[str]] = {}
        for conn in list(self.connections):
            for sub in list(conn.subs.values()):
                if sub.ch in PRIVATE_CHANNELS:
                    continue
                for payload in self._market_messages(sub, now, cache):
                    self._push(conn, payload)

    def push_private(self, account: str, ch: str, data: dict[str, Any], ts: int) -> None:
        if self._stalled:
            return
        payload: str | None = None
        need_sub = self.ex.config.private_requires_subscribe
        for conn in list(self.connections):
            if conn.kind != "private" or conn.account != account:
                continue
            if need_sub and ("", ch) not in conn.subs:
                continue
            payload = payload or _dumps({"ch": ch, "ts": ts, "data": data})
            self._push(conn, payload)

    def _market_messages(
        self, sub: Subscription, now: int, cache: dict[Any, list[str]], snapshot: bool = False
    ) -> list[str]:
        try:
            if sub.interval is not None:
                return self._kline_messages(sub, now, cache)
            if sub.ch == "trade":
                return self._trade_messages(sub, snapshot)
            key = (sub.ch, sub.symbol, now)
            if key not in cache:
                cache[key] = self._simple_message(sub, now)
            return cache[key]
        except Exception:  # a bug in one channel must not silence the others
            log.exception("building %s push failed", sub.ch)
            return []

    def _kline_messages(self, sub: Subscription, now: int, cache: dict[Any, list[str]]) -> list[str]:
        interval = sub.interval
        assert interval is not None
        m = self.ex.market.symbols[sub.symbol]
        start = interval.start_of(now)
        out: list[str] = []
        ts_mode = self.ex.config.kline_push_ts
        if sub.last_start is not None and sub.last_start < start:
            # the previous bar's final push: ts in that bar, its open, or (lagged) already the next bar's time
            closing_ts = {"bar_open": sub.last_start, "push_time_lagged": now}.get(
                ts_mode, interval.next_start(sub.last_start) - 1
            )
            key = (sub.ch, sub.symbol, sub.last_start, closing_ts)
            if key not in cache:
                candle = m.book.candle(interval, sub.last_start)
                final = [] if candle is None else [self._kline_payload(sub, closing_ts, m.fmt.push_data(candle))]
                cache[key] = final
            out += cache[key]
        key = (sub.ch, sub.symbol, start, now)
        if key not in cache:
            candle = m.book.candle(interval, start)
            ts = start if ts_mode == "bar_open" else now
            cache[key] = [] if candle is None else [self._kline_payload(sub, ts, m.fmt.push_data(candle))]
        out += cache[key]
        sub.last_start = start
        return out

    @staticmethod
    def _kline_payload(sub: Subscription, ts: int, data: dict[str, str]) -> str:
        return _dumps({"ch": sub.ch, "symbol": sub.symbol, "ts": ts, "data": data})

    def _trade_messages(self, sub: Subscription, snapshot: bool) -> list[str]:
        m = self.ex.market.symbols[sub.symbol]
        since = sub.last_trade_ts if sub.last_trade_ts is not None else -1
        ticks = self.ex.market.recent_trades(sub.symbol, since, 20 if snapshot else 200)
        if not ticks:
            return []
        sub.last_trade_ts = ticks[-1].ts
        pd, vd = m.spec.quote_precision, m.spec.base_precision
        items = []
        prev = ticks[0].price
        for t in ticks:
            side = "buy" if t.price >= prev else "sell"
            items.append({"t": iso_ms(t.ts), "p": units(t.price, pd), "v": units(t.volume, vd), "s": side})
            prev = t.price
        return [_dumps({"ch": "trade", "symbol": sub.symbol, "ts": ticks[-1].ts, "data": items})]

    def _simple_message(self, sub: Subscription, now: int) -> list[str]:
        market = self.ex.market
        if sub.ch == "tickers":
            data: Any = [self._ticker_data(s, with_symbol=True) for s in market.symbols]
            return [_dumps({"ch": "tickers", "ts": now, "data": data})]
        if sub.ch == "ticker":
            data = self._ticker_data(sub.symbol)
        elif sub.ch in DEPTH_LEVELS:
            asks, bids = market.depth(sub.symbol, DEPTH_LEVELS[sub.ch])
            data = {"a": asks, "b": bids}
        elif sub.ch == "price":
            m = market.symbols[sub.symbol]
            last = m.fmt.price(m.path.last_tick.price)
            next_funding = (now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
            data = {
                "ip": last,
                "mp": last,
                "fr": dec(market.funding_rate),
                "ft": iso_ms(next_funding),
                "nft": iso_ms(next_funding + FUNDING_PERIOD_MS),
            }
        else:
            return []
        return [_dumps({"ch": sub.ch, "symbol": sub.symbol, "ts": now, "data": data})]

    def _ticker_data(self, symbol: str, with_symbol: bool = False) -> dict[str, Any]:
        t = self.ex.market.ticker(symbol)
        open_, last = Decimal(t["open"]), Decimal(t["lastPrice"])
        change = ((last - open_) / open_).quantize(Decimal("0.0001")) if open_ else Decimal(0)
        data = {
            "o": t["open"],
            "la": t["lastPrice"],
            "h": t["high"],
            "l": t["low"],
            "b": t["baseVol"],
            "q": t["quoteVol"],
            "r": dec(change),
        }
        return {"s": symbol, **data} if with_symbol else data

