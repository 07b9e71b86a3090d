"""The mock exchange as a running service: wiring, lifecycle and the background loops.

:class:`MockExchange` owns one instance of every part (clocks, market data, matching engine, ledger, rate
limiter, fault injector, WebSocket hub) and is the only place they meet. Everything runs on one asyncio
event loop, so state needs no locks: each request first :meth:`~MockExchange.sync`\\s the market up to the
market clock (generating ticks and matching them), then reads or changes state synchronously.

Use it directly in async code::

    async with MockExchange(seed=7, time_scale=60) as ex:
        ... ex.rest_url, ex.public_ws_url, ex.private_ws_url ...

or from sync tests through :func:`laptop_agents.mock_exchange.testing.running_mock_exchange`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

from aiohttp import web

from . import errors
from .admin import AdminApi
from .clock import MarketClock, WallClock
from .config import AccountConfig, MockExchangeConfig, build_config
from .engine import FeeSchedule, IdSequence, MatchingEngine
from .faults import FaultInjector, FaultSettings
from .holds import HoldRegistry
from .ledger import Ledger
from .market import MarketData
from .middleware import rest_fault_middleware
from .models import (
    BalanceEvent,
    CancelEvent,
    EngineEvent,
    FillEvent,
    MarginMode,
    OrderEvent,
    PositionEvent,
    TpslEvent,
    TriggerEvent,
)
from .ratelimit import RateLimiter
from .rest import RestApi
from .tpsl import TpslDesk
from .wire import PrivateFormat, dec, order_rest, position_rest
from .ws import WsHub

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 0.05
SHUTDOWN_TIMEOUT_S = 1.0
MARGIN_COIN = "USDT"


class MockExchange:
    """A mock Bitunix futures exchange. ``config`` and/or keyword options: see :class:`MockExchangeConfig`."""

    def __init__(self, config: MockExchangeConfig | None = None, **options: Any) -> None:
        self.config = cfg = build_config(config, **options)
        self.faults = FaultInjector(cfg.seed, cfg.faults.model_copy(deep=True))
        self.wall = WallClock(skew_ms=lambda: self.faults.settings.clock_skew_ms)
        start_ms = cfg.start_time_ms if cfg.start_time_ms is not None else WallClock().now_ms()
        self.clock = MarketClock(start_ms, cfg.time_scale)
        if self.faults.settings.price_paused:
            self.clock.pause()
        self.market = MarketData(cfg, start_ms)
        self._now = start_ms
        self._ids = IdSequence()
        self._accounts = list(cfg.effective_accounts())
        self.engine = self._new_engine()
        self.ledger = Ledger(self.wall.now_ms, self.market_now, cfg.ledger_file)
        self.rate_limiter = RateLimiter(cfg.rate_limits)
        self.hub = WsHub(self)
        self.private_format = PrivateFormat(cfg)
        self.host = cfg.host
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.holds = HoldRegistry()

    def _new_engine(self) -> MatchingEngine:
        cfg = self.config
        engine = MatchingEngine(
            cfg.symbols,
            FeeSchedule.from_bps(cfg.maker_fee_bps, cfg.taker_fee_bps),
            maintenance_margin_rate=cfg.maintenance_margin_rate,
            liquidation=cfg.liquidation,
            ids=self._ids,
            close_side=cfg.close_side,
            duplicate_client_id=cfg.duplicate_client_id,
            system_cancel_status=cfg.system_cancel_status,
            tpsl_legs=cfg.tpsl_legs,
            tpsl_modify=cfg.tpsl_modify,
            tpsl_after_close=cfg.tpsl_after_close,
        )
        for acct in self._accounts:
            engine.add_account(acct.api_key, acct.secret, acct.balance, acct.position_mode)
        for symbol in self.market.symbols:
            engine.prices[symbol] = self.market.last_price(symbol)
        return engine

    # --- addresses --------------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self._require_port()}"

    @property
    def public_ws_url(self) -> str:
        return f"ws://{self.host}:{self._require_port()}/public/"

    @property
    def private_ws_url(self) -> str:
        return f"ws://{self.host}:{self._require_port()}/private/"

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the mock exchange is not started")
        return self.port

    # --- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind (127.0.0.1, ``port``; 0 = free port) and start the tick, push and fault loops."""
        if self._runner is not None:
            raise RuntimeError("already started")
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[rest_fault_middleware(self)])
        app.add_routes(RestApi(self).routes())
        app.add_routes(AdminApi(self).routes())
        for kind in ("public", "private"):
            handler = self._ws_handler(kind)
            app.router.add_get(f"/{kind}/", handler)
            app.router.add_get(f"/{kind}", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.sync()
        self._tasks = [
            asyncio.create_task(self._housekeeping(), name="mock-exchange-housekeeping"),
            asyncio.create_task(self._push_loop(), name="mock-exchange-push"),
        ]
        self.ledger.record("admin", action="start", url=self.rest_url, seed=self.config.seed)

    async def stop(self) -> None:
        """Close every connection, stop the loops, write the final state to the ledger. Idempotent."""
        if self._runner is None:
            return
        self._stopping.set()
        self.holds.release("drop")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.hub.close_all()
        runner, self._runner = self._runner, None
        await runner.cleanup()
        self.port = None
        self.ledger.record("final_state", accounts={k: self.account_summary(k) for k in self.engine.accounts})
        self.ledger.close()

    async def __aenter__(self) -> MockExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_stopping(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s`` but wake at once when the exchange stops (used by hung requests)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout_s)
        except TimeoutError:
            pass

    def _ws_handler(self, kind: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.hub.handle(request, kind)

        return handle

    async def _housekeeping(self) -> None:
        """Advance the market (so LIMIT/TP/SL fill on time) and run the periodic WebSocket drop fault."""
        last_drop = time.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                self.sync()
                every = self.faults.settings.ws_drop_every_s
                now = time.monotonic()
                if every <= 0:
                    last_drop = now
                elif now - last_drop >= every:
                    last_drop = now
                    await self.drop_ws(self.faults.settings.ws_drop_mode)
            except Exception:
                log.exception("mock exchange housekeeping failed")

    async def _push_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.push_interval_ms / 1000
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + interval, loop.time())
            try:
                self.sync()
                self.hub.push_cycle()
            except Exception:
                log.exception("mock exchange push cycle failed")

    # --- market time ------------------------------------------------------------------------------------

    def market_now(self) -> int:
        """Market time of the last :meth:`sync` (all data served is consistent with it)."""
        return self._now

    def sync(self) -> None:
        """Generate ticks up to the market clock and run them through the matching engine."""
        now = self.clock.now_ms()
        if now < self._now:
            return
        self._now = now
        for symbol, ticks in self.market.advance(now):
            path = self.market.symbols[symbol].path
            engine = self.engine
            for tick in ticks:
                if not engine.active():  # nothing to match: only the last price matters
                    engine.prices[symbol] = path.to_price(ticks[-1].price)
                    break
                events = engine.on_price(symbol, path.to_price(tick.price), tick.ts)
                if events:
                    self.dispatch(events)

    def advance_clock(self, ms: int) -> None:
        self.clock.advance(ms)
        self.sync()
        self.ledger.record("admin", action="advance_clock", ms=ms)

    def set_price(self, price: Decimal, symbol: str) -> None:
        """Make the next tick of ``symbol`` exactly ``price`` and produce that tick now."""
        m = self.market.get(symbol)
        if m is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        units = price / m.spec.price_step
        if units != units.to_integral_value() or units <= 0:
            raise ValueError(f"price must be a positive multiple of {m.spec.price_step}")
        self.sync()
        m.path.set_next_price(int(units))
        self.clock.advance(self.config.tick_ms)
        self.sync()
        self.ledger.record("admin", action="set_price", symbol=symbol, price=str(price))

    # --- faults -----------------------------------------------------------------------------------------

    def set_faults(self, **patch: Any) -> FaultSettings:
        """Patch the fault settings (validated); pausing/unpausing the price path takes effect at once."""
        self.sync()
        settings = self.faults.update(patch)
        self._apply_pause(settings.price_paused)
        self.ledger.record("admin", action="set_faults", patch=patch)
        return settings

    def _apply_pause(self, paused: bool) -> None:
        if paused and not self.clock.paused:
            self.clock.pause()
        elif not paused and self.clock.paused:
            self.clock.resume()

    async def drop_ws(self, mode: str = "abort") -> int:
        dropped = await self.hub.drop_all(mode)
        self.ledger.record("fault", fault="ws_drop", mode=mode, dropped=dropped)
        return dropped

    def rate_limit_allows(self, group: str, client: str) -> bool:
        return not self.config.rate_limits_enabled or self.rate_limiter.allow(group, client)

    def reset(self, faults: bool = True, accounts: bool = True, ledger: bool = True, rate_limits: bool = True) -> None:
        """Back to the start state (the price path and market clock keep running)."""
        self.sync()
        if faults:
            self.faults.reset()
            self.holds.release("drop")
            self._apply_pause(False)
        if accounts:
            self.engine = self._new_engine()
        if ledger:
            self.ledger.clear()
        if rate_limits:
            self.rate_limiter.reset()
        self.ledger.record("admin", action="reset", faults=faults, accounts=accounts, ledger=ledger)

    def add_account(self, account: AccountConfig) -> None:
        self.engine.add_account(account.api_key, account.secret, account.balance, account.position_mode)
        self._accounts.append(account)
        self.ledger.record("admin", action="add_account", account=account.api_key, balance=str(account.balance))

    # --- events out: ledger and private pushes ----------------------------------------------------------

    def dispatch(self, events: list[EngineEvent]) -> None:
        balances: dict[str, int] = {}
        fmt = self.private_format
        for ev in events:
            if isinstance(ev, FillEvent):
                t = ev.trade
                self.ledger.record(
                    "fill",
                    account=ev.account,
                    orderId=t.order_id,
                    clientId=t.client_id,
                    tradeId=t.trade_id,
                    positionId=t.position_id,
                    symbol=t.symbol,
                    side=t.side.value,
                    qty=dec(t.qty),
                    price=dec(t.price),
                    role=t.role.value,
                    fee=dec(t.fee),
                    realizedPNL=dec(t.realized_pnl),
                    reason=ev.reason,
                    balance=dec(ev.wallet_after),
                )
            elif isinstance(ev, CancelEvent):
                o = ev.order
                self.ledger.record(
                    "cancel",
                    account=ev.account,
                    orderId=o.order_id,
                    clientId=o.client_id,
                    symbol=o.symbol,
                    status=o.status.value,
                    reason=ev.reason,
                )
            elif isinstance(ev, TriggerEvent):
                p = ev.position
                self.ledger.record(
                    "trigger",
                    account=ev.account,
                    kind=ev.kind,
                    positionId=p.position_id,
                    symbol=p.symbol,
                    side=p.side.value,
                    qty=dec(p.qty),
                    triggerPrice=dec(ev.trigger_price),
                    marketPrice=dec(ev.market_price),
                )
            elif isinstance(ev, TpslEvent):
                tp = ev.order
                self.ledger.record(
                    "tpsl",
                    account=ev.account,
                    event=ev.event,
                    reason=ev.reason,
                    orderId=tp.order_id,
                    kind=tp.kind,
                    positionId=tp.position_id,
                    symbol=tp.symbol,
                    status=tp.status,
                    tpPrice=dec(tp.tpsl.tp_price),
                    tpStopType=tp.tpsl.tp_stop_type if tp.tpsl.tp_price is not None else None,
                    tpQty=dec(tp.tp_qty),
                    slPrice=dec(tp.tpsl.sl_price),
                    slStopType=tp.tpsl.sl_stop_type if tp.tpsl.sl_price is not None else None,
                    slQty=dec(tp.sl_qty),
                )
                acct = self.engine.accounts[ev.account]
                push = fmt.tpsl(ev.event, tp, self.engine.leverage_of(acct, tp.symbol), acct.position_mode.value)
                self.hub.push_private(ev.account, "tpsl", push, ev.ts)
            elif isinstance(ev, OrderEvent):
                self.hub.push_private(ev.account, "order", fmt.order(ev.event, ev.order), ev.ts)
            elif isinstance(ev, PositionEvent):
                price = self.engine.prices[ev.position.symbol]
                self.hub.push_private(ev.account, "position", fmt.position(ev.event, ev.position, price), ev.ts)
            elif isinstance(ev, BalanceEvent):
                balances[ev.account] = ev.ts
        for account, ts in balances.items():
            self.hub.push_private(account, "balance", self._balance_push(account), ts)

    def _balance_push(self, api_key: str) -> dict[str, Any]:
        acct = self.engine.accounts[api_key]
        iso_margin = sum(
            (p.margin for p in acct.positions.values() if p.margin_mode is MarginMode.ISOLATION), Decimal(0)
        )
        iso_frozen = sum((o.frozen for o in acct.open.values() if o.margin_mode is MarginMode.ISOLATION), Decimal(0))
        return self.private_format.balance(acct, MARGIN_COIN, iso_margin, iso_frozen)

    def record_request(
        self, kind: str, path: str, account: str | None, request: Any, result: dict[str, Any]
    ) -> None:
        """Ledger entry for a state-changing API call, whatever its outcome."""
        code = result["code"]
        data = result["data"] if isinstance(result["data"], dict) else {}
        if kind == "order_request":
            body = request if isinstance(request, dict) else {}
            client_id = body.get("clientId")
            self.ledger.record(
                "order_request",
                account=account,
                path=path,
                request=request,
                code=code,
                msg=result["msg"],
                accepted=code == errors.SUCCESS,
                orderId=data.get("orderId"),
                clientId=None if client_id in (None, "") else str(client_id),
                duplicate=code == errors.CLIENT_ID_DUPLICATE,
            )
        else:
            self.ledger.record(
                "request", account=account, path=path, request=request, code=code, msg=result["msg"],
                data=result["data"],
            )

    # --- views ------------------------------------------------------------------------------------------

    def account_summary(self, api_key: str) -> dict[str, Any]:
        eng = self.engine
        acct = eng.accounts[api_key]
        return {
            "apiKey": api_key,
            "startingBalance": dec(acct.starting_balance),
            "balance": dec(acct.wallet),
            "available": dec(acct.available),
            "frozen": dec(acct.frozen),
            "margin": dec(acct.margin),
            "unrealizedPNL": dec(eng.unrealized_pnl(acct)),
            "realizedPNL": dec(sum((t.realized_pnl for t in acct.trades), Decimal(0))),
            "fees": dec(sum((t.fee for t in acct.trades), Decimal(0))),
            "tradeCount": len(acct.trades),
            "positionMode": acct.position_mode.value,
            "positions": [
                position_rest(p, eng.price(p.symbol), eng.liquidation_price(acct, p), eng.mmr, admin=True)
                for p in acct.positions.values()
            ],
            "openOrders": [order_rest(o) for o in acct.open.values()],
            "tpslOrders": [TpslDesk(eng).row(acct, t) | {"kind": t.kind} for t in acct.tpsl_orders.values()],
        }

    def ledger_snapshot(
        self, types: list[str] | None = None, account: str | None = None, since: int | None = None
    ) -> dict[str, Any]:
        self.sync()
        events = self.ledger.records(types, account, since)
        accounts = {k: self.account_summary(k) for k in self.engine.accounts if account in (None, k)}
        return {"events": events, "accounts": accounts, "lastSeq": self.ledger.last_seq}

    def state(self) -> dict[str, Any]:
        self.sync()
        return {
            "marketTime": self.market_now(),
            "wallTime": self.wall.now_ms(),
            "timeScale": self.clock.time_scale,
            "pricePaused": self.clock.paused,
            "symbols": {
                s: {"lastPrice": dec(m.path.last_price), "regime": m.path.regime, "listingTime": m.path.listing_ms}
                for s, m in self.market.symbols.items()
            },
            "connections": self.hub.counts(),
            "accounts": {k: self.account_summary(k) for k in self.engine.accounts},
            "faults": self.faults.settings.model_dump(),
        }
