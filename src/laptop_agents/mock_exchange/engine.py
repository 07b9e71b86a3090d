"""The matching engine: accounts, orders, positions, fees, TP/SL and liquidation. Pure: no I/O, no clock.

Every mutating call takes the market time ``ts`` and returns the :mod:`~.models` events it caused; the
server turns those into ledger records and private WebSocket pushes. Callers feed prices tick by tick with
:meth:`MatchingEngine.on_price`, which is where resting LIMIT orders fill (when the path crosses them, at
their limit price, maker fee) and position TP/SL and liquidation trigger.

Model (the reference page plus the brief's rules)
  * Liquidity is unlimited at the current price: MARKET orders and marketable LIMIT orders fill at once, in
    full, at the current price with the taker fee; resting LIMIT orders fill in full at their price with the
    maker fee.
  * Margin required = notional / leverage (leverage per account and symbol, default 20). Opening an
    exposure needs ``margin + fee`` of available balance, else 20003. Resting orders freeze their margin.
  * ``available = wallet - position margin - frozen``; the wallet moves only by realized PnL and fees, so
    every fill changes ``available + frozen + margin`` by exactly ``realizedPNL - fee``.
  * ONE_WAY (default) nets: a SELL against a long reduces it and any excess opens a short. HEDGE keeps a long
    and a short per symbol. Closing orders (``tradeSide=CLOSE`` or ``reduceOnly``) only reduce; in hedge
    mode ``side`` of a CLOSE is the position's side (close a long with ``side=BUY``), as the page says. In
    one-way mode a CLOSE is accepted with either side, because clients read the page both ways.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation

from . import errors
from .config import SymbolSpec
from .errors import ApiError
from .models import (
    USDT_STEP,
    ZERO,
    Account,
    BalanceEvent,
    CancelEvent,
    Effect,
    EngineEvent,
    FillEvent,
    MarginMode,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    PlaceOrderRequest,
    Position,
    PositionEvent,
    PositionMode,
    PositionSide,
    Role,
    Side,
    TpSl,
    TpslEvent,
    TpslOrder,
    Trade,
    TradeSide,
    TriggerEvent,
)

BPS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker fee rates as fractions of notional."""

    maker: Decimal
    taker: Decimal

    @classmethod
    def from_bps(cls, maker_bps: Decimal | int | str, taker_bps: Decimal | int | str) -> FeeSchedule:
        return cls(Decimal(maker_bps) * BPS, Decimal(taker_bps) * BPS)

    def rate(self, role: Role) -> Decimal:
        return self.maker if role is Role.MAKER else self.taker


@dataclass(frozen=True, slots=True)
class OrderRef:
    """One entry of a cancel ``orderList``: an ``orderId`` or a ``clientId``."""

    order_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelFailure:
    order_id: str | None
    client_id: str | None
    code: int
    msg: str


class IdSequence:
    """Deterministic numeric id strings, one sequence per kind (Bitunix ids are long digit strings)."""

    def __init__(self) -> None:
        self._order = itertools.count(1)
        self._position = itertools.count(1)
        self._trade = itertools.count(1)

    def order(self) -> str:
        return str(1_100_000_000_000_000_000 + next(self._order))

    def position(self) -> str:
        return str(2_100_000_000_000_000_000 + next(self._position))

    def trade(self) -> str:
        return str(3_100_000_000_000_000_000 + next(self._trade))


def _fits_step(value: Decimal, step: Decimal) -> bool:
    try:
        return value == value.quantize(step)
    except InvalidOperation:
        return False


class MatchingEngine:
    """All accounts of the exchange and the rules that move money between them and the market."""

    def __init__(
        self,
        specs: Iterable[SymbolSpec],
        fees: FeeSchedule,
        *,
        maintenance_margin_rate: Decimal = Decimal("0.005"),
        liquidation: bool = True,
        ids: IdSequence | None = None,
        close_side: str = "position",
        duplicate_client_id: str = "forever",
        system_cancel_status: str = "SYSTEM_CANCELED",
        tpsl_legs: str = "combined",
        tpsl_modify: str = "merge",
        tpsl_after_close: str = "drop",
    ) -> None:
        self.specs: dict[str, SymbolSpec] = {s.symbol: s for s in specs}
        self.fees = fees
        self.mmr = maintenance_margin_rate
        self.liquidation = liquidation
        self.accounts: dict[str, Account] = {}
        self.prices: dict[str, Decimal] = {}
        self._ids = ids or IdSequence()  # shared across resets so ids are never reused
        self.close_side = close_side  # dialect: side convention of tradeSide=CLOSE orders
        self.duplicate_client_id = duplicate_client_id  # dialect: scope of 30042
        self.system_cancel_status = OrderStatus(system_cancel_status)  # dialect: exchange-initiated cancels
        self.tpsl_legs = tpsl_legs  # dialect: one TP/SL order for both legs, or one per leg
        self.tpsl_modify = tpsl_modify  # dialect: modify keeps fields not sent ("merge") or clears them
        self.tpsl_after_close = tpsl_after_close  # dialect: a closed position's TP/SL orders dropped or kept listed

    # --- set-up and lookups -----------------------------------------------------------------------------

    def add_account(
        self, api_key: str, secret: str, balance: Decimal, position_mode: str = "ONE_WAY"
    ) -> Account:
        if api_key in self.accounts:
            raise ValueError(f"account {api_key!r} exists")
        acct = Account(
            api_key=api_key,
            secret=secret,
            starting_balance=Decimal(balance),
            wallet=Decimal(balance),
            position_mode=PositionMode(position_mode),
        )
        self.accounts[api_key] = acct
        return acct

    def active(self) -> bool:
        """True if any account has working orders or positions (ticks then need matching)."""
        return any(a.open or a.positions for a in self.accounts.values())

    def secrets(self) -> dict[str, str]:
        return {k: a.secret for k, a in self.accounts.items()}

    def account(self, api_key: str) -> Account:
        try:
            return self.accounts[api_key]
        except KeyError:
            raise ApiError(errors.API_KEY_EMPTY, "api-key is invalid") from None

    def spec(self, symbol: str | None) -> SymbolSpec:
        spec = self.specs.get(symbol or "")
        if spec is None:
            raise ApiError(errors.MARKET_NOT_EXISTS, f"Market not exists: {symbol!r}")
        return spec

    def price(self, symbol: str) -> Decimal:
        return self.prices[symbol]

    def leverage_of(self, acct: Account, symbol: str) -> int:
        return acct.leverage.get(symbol, self.specs[symbol].default_leverage)

    def margin_mode_of(self, acct: Account, symbol: str) -> MarginMode:
        return acct.margin_mode.get(symbol, MarginMode(self.specs[symbol].default_margin_mode))

    def find_order(self, acct: Account, order_id: str | None, client_id: str | None) -> Order | None:
        if order_id:
            return acct.orders.get(order_id)
        if client_id:
            oid = acct.client_ids.get(client_id)
            return acct.orders.get(oid) if oid else None
        return None

    def find_position(self, acct: Account, position_id: str) -> Position | None:
        return next((p for p in acct.positions.values() if p.position_id == position_id), None)

    # --- placing orders ---------------------------------------------------------------------------------

    def place_order(
        self, api_key: str, req: PlaceOrderRequest, ts: int
    ) -> tuple[Order, list[EngineEvent]]:
        """Validate and accept one order; execute it at once if it is marketable. Raises ApiError."""
        acct = self.account(api_key)
        spec = self.spec(req.symbol)
        if spec.symbol_status != "OPEN":
            raise ApiError(errors.FUTURES_NOT_TRADABLE, f"{spec.symbol} is {spec.symbol_status}")
        if req.client_id and self._client_id_taken(acct, req.client_id):
            raise ApiError(
                errors.CLIENT_ID_DUPLICATE,
                f"Client ID duplicate: {req.client_id} (order {acct.client_ids[req.client_id]})",
            )
        self._check_qty(spec, req)
        self._check_price(spec, req)
        market = self.prices[spec.symbol]
        closes, direction, position_id = self._resolve_intent(acct, req)
        marketable = req.order_type is OrderType.MARKET or (
            req.price is not None
            and (req.price >= market if direction is Side.BUY else req.price <= market)
        )
        exec_price = market if marketable else req.price
        assert exec_price is not None
        if closes is None and not req.tpsl.empty:
            self._check_tpsl(spec, req.tpsl, direction, exec_price)
        leverage = self.leverage_of(acct, spec.symbol)
        open_qty = self._opening_qty(acct, spec.symbol, direction, req.qty, closes)
        margin = (open_qty * exec_price / leverage).quantize(USDT_STEP, ROUND_UP)
        role = Role.TAKER if marketable else Role.MAKER
        fee_estimate = (open_qty * exec_price * self.fees.rate(role)).quantize(USDT_STEP, ROUND_UP)
        post_only_reject = req.effect is Effect.POST_ONLY and marketable
        if open_qty > 0 and not post_only_reject and margin + fee_estimate > acct.available:
            raise ApiError(
                errors.INSUFFICIENT_BALANCE,
                f"Insufficient balance: need {margin + fee_estimate} (margin {margin} + fee "
                f"{fee_estimate}), available {acct.available}",
            )
        order = self._new_order(
            acct,
            symbol=spec.symbol,
            side=req.side,
            direction=direction,
            order_type=req.order_type,
            qty=req.qty,
            price=req.price if req.order_type is OrderType.LIMIT else None,
            effect=req.effect,
            client_id=req.client_id,
            reduce_only=req.reduce_only,
            trade_side=req.trade_side,
            closes=closes,
            position_id=position_id,
            tpsl=req.tpsl,
            ts=ts,
        )
        events: list[EngineEvent] = [OrderEvent(api_key, "CREATE", order.snapshot(), ts)]
        if post_only_reject:
            events += self._cancel(acct, order, "post_only_would_take", ts)
        elif marketable:
            events += self._execute(acct, order, market, Role.TAKER, ts, "order")
        elif req.effect in (Effect.IOC, Effect.FOK):
            events += self._cancel(acct, order, "not_marketable_" + req.effect.value.lower(), ts)
        else:
            order.frozen = margin
            events.append(BalanceEvent(api_key, ts))
        return order, events

    def _client_id_taken(self, acct: Account, client_id: str) -> bool:
        """30042 scope (dialect): any earlier order with this clientId, or only one still open."""
        order_id = acct.client_ids.get(client_id)
        if order_id is None:
            return False
        if self.duplicate_client_id == "forever":
            return True
        return order_id in acct.open

    def _check_close_side(self, req: PlaceOrderRequest, pos_side: PositionSide) -> None:
        """Dialect ``close_side``: a CLOSE must name the position's side (docs) or the exit side (community)."""
        if req.trade_side is not TradeSide.CLOSE or self.close_side == "either":
            return
        wanted = pos_side.opening_side if self.close_side == "position" else pos_side.closing_side
        if req.side is not wanted:
            raise ApiError(
                errors.POSITION_NOT_EXIST,
                f"Position not exist: no position to close with side {req.side.value} "
                f"(this exchange closes a {pos_side.value} with side {wanted.value})",
            )

    def _check_qty(self, spec: SymbolSpec, req: PlaceOrderRequest) -> None:
        qty = req.qty
        if not qty.is_finite() or qty <= 0:
            raise ApiError(errors.PARAMETER_ERROR, "qty must be a positive number")
        if qty < spec.min_trade_volume:
            raise ApiError(errors.QTY_BELOW_MIN, f"qty {qty} is below minTradeVolume {spec.min_trade_volume}")
        if not _fits_step(qty, spec.qty_step):
            raise ApiError(
                errors.VALUE_NOT_COMPLY, f"qty {qty} has more than basePrecision {spec.base_precision} decimals"
            )
        if req.order_type is OrderType.MARKET and qty > spec.max_market_order_volume:
            raise ApiError(errors.QTY_ABOVE_MAX_MARKET, f"qty {qty} > maxMarketOrderVolume")
        if req.order_type is OrderType.LIMIT and qty > spec.max_limit_order_volume:
            raise ApiError(errors.QTY_ABOVE_MAX_LIMIT, f"qty {qty} > maxLimitOrderVolume")

    def _check_price(self, spec: SymbolSpec, req: PlaceOrderRequest) -> None:
        if req.order_type is not OrderType.LIMIT:
            return
        price = req.price
        if price is None:
            raise ApiError(errors.PARAMETER_ERROR, "price is required for LIMIT orders")
        if not price.is_finite() or price <= 0:
            raise ApiError(errors.PARAMETER_ERROR, "price must be a positive number")
        if not _fits_step(price, spec.price_step):
            raise ApiError(
                errors.VALUE_NOT_COMPLY,
                f"price {price} has more than quotePrecision {spec.quote_precision} decimals",
            )

    def _check_tpsl(self, spec: SymbolSpec, tpsl: TpSl, direction: Side, ref: Decimal) -> None:
        long = direction is Side.BUY
        for value, name in (
            (tpsl.tp_price, "tpPrice"),
            (tpsl.sl_price, "slPrice"),
            (tpsl.tp_order_price, "tpOrderPrice"),
            (tpsl.sl_order_price, "slOrderPrice"),
        ):
            if value is None:
                continue
            if value <= 0:
                raise ApiError(errors.TRIGGER_PRICE_NOT_POSITIVE, f"{name} must be > 0")
            if not _fits_step(value, spec.price_step):
                raise ApiError(errors.VALUE_NOT_COMPLY, f"{name} {value} exceeds quotePrecision")
        if tpsl.tp_price is not None and (tpsl.tp_price <= ref if long else tpsl.tp_price >= ref):
            relation = "above" if long else "below"
            raise ApiError(errors.TP_PRICE_INVALID, f"tpPrice {tpsl.tp_price} must be {relation} {ref}")
        if tpsl.sl_price is not None and (tpsl.sl_price >= ref if long else tpsl.sl_price <= ref):
            relation = "below" if long else "above"
            raise ApiError(errors.SL_PRICE_INVALID, f"slPrice {tpsl.sl_price} must be {relation} {ref}")

    def _resolve_intent(
        self, acct: Account, req: PlaceOrderRequest
    ) -> tuple[PositionSide | None, Side, str | None]:
        """Return (position side the order may only reduce or None, book direction, position id)."""
        closing = req.trade_side is TradeSide.CLOSE or req.reduce_only
        if not closing:
            return None, req.side, None
        symbol = req.symbol
        if req.position_id:
            pos = self.find_position(acct, req.position_id)
            if pos is None or pos.symbol != symbol:
                raise ApiError(errors.POSITION_NOT_EXIST, f"Position not exist: {req.position_id}")
            if req.trade_side is not TradeSide.CLOSE and req.side is pos.side.opening_side:
                raise ApiError(errors.REDUCE_ONLY_SAME_DIRECTION)
            self._check_close_side(req, pos.side)
            return pos.side, pos.side.closing_side, pos.position_id
        if acct.position_mode is PositionMode.HEDGE and req.trade_side is TradeSide.CLOSE:
            # The dialect's convention picks the position; "either" falls back to the other reading.
            if self.close_side == "exit":
                candidates = [PositionSide.opened_by(req.side.opposite)]
            elif self.close_side == "position":
                candidates = [PositionSide.opened_by(req.side)]
            else:
                candidates = [PositionSide.opened_by(req.side), PositionSide.opened_by(req.side.opposite)]
            for side in candidates:
                pos = acct.positions.get((symbol, side))
                if pos is not None:
                    return side, side.closing_side, pos.position_id
            raise ApiError(errors.POSITION_NOT_EXIST, f"no position to close on {symbol} with side {req.side.value}")
        if acct.position_mode is PositionMode.HEDGE:
            side = PositionSide.opened_by(req.side.opposite)  # reduce-only SELL reduces the long
            pos = acct.positions.get((symbol, side))
            if pos is None:
                raise ApiError(errors.REDUCE_ONLY_NO_POSITION)
            return side, req.side, pos.position_id
        positions = acct.symbol_positions(symbol)
        if not positions:
            if req.trade_side is TradeSide.CLOSE:
                raise ApiError(errors.POSITION_NOT_EXIST, f"no position to close on {symbol}")
            raise ApiError(errors.REDUCE_ONLY_NO_POSITION)
        pos = positions[0]
        if req.trade_side is TradeSide.CLOSE:
            self._check_close_side(req, pos.side)
            return pos.side, pos.side.closing_side, pos.position_id
        if req.side is pos.side.opening_side:
            raise ApiError(errors.REDUCE_ONLY_SAME_DIRECTION)
        return pos.side, req.side, pos.position_id

    def _opening_qty(
        self, acct: Account, symbol: str, direction: Side, qty: Decimal, closes: PositionSide | None
    ) -> Decimal:
        if closes is not None:
            return ZERO
        if acct.position_mode is PositionMode.ONE_WAY:
            opposite = acct.positions.get((symbol, PositionSide.opened_by(direction.opposite)))
            if opposite is not None:
                return max(ZERO, qty - opposite.qty)
        return qty

    def _new_order(
        self,
        acct: Account,
        *,
        symbol: str,
        side: Side,
        direction: Side,
        order_type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        effect: Effect,
        client_id: str | None,
        reduce_only: bool,
        trade_side: TradeSide,
        closes: PositionSide | None,
        position_id: str | None,
        tpsl: TpSl,
        ts: int,
        source: str = "api",
    ) -> Order:
        order = Order(
            order_id=self._ids.order(),
            account=acct.api_key,
            symbol=symbol,
            side=side,
            direction=direction,
            order_type=order_type,
            qty=qty,
            price=price,
            effect=effect,
            client_id=client_id,
            reduce_only=reduce_only,
            trade_side=trade_side,
            closes=closes,
            position_id=position_id,
            leverage=self.leverage_of(acct, symbol),
            margin_mode=self.margin_mode_of(acct, symbol),
            position_mode=acct.position_mode,
            tpsl=tpsl,
            ctime=ts,
            mtime=ts,
            source=source,
        )
        acct.orders[order.order_id] = order
        acct.open[order.order_id] = order
        if client_id:
            acct.client_ids[client_id] = order.order_id
        return order

    # --- execution --------------------------------------------------------------------------------------

    def _execute(
        self, acct: Account, order: Order, price: Decimal, role: Role, ts: int, reason: str
    ) -> list[EngineEvent]:
        """Fill the order's remaining quantity at ``price`` (clipped to the position for closing orders)."""
        symbol = order.symbol
        qty = order.remaining
        target: Position | None = None
        close_qty = open_qty = ZERO
        if order.closes is not None:
            target = acct.positions.get((symbol, order.closes))
            if target is None:
                return self._cancel(acct, order, "no_position_to_reduce", ts)
            close_qty = min(qty, target.qty)
        else:
            if acct.position_mode is PositionMode.ONE_WAY:
                target = acct.positions.get((symbol, PositionSide.opened_by(order.direction.opposite)))
                if target is not None:
                    close_qty = min(qty, target.qty)
            open_qty = qty - close_qty
        executed = close_qty + open_qty
        notional = executed * price
        fee = (notional * self.fees.rate(role)).quantize(USDT_STEP)
        close_fee = (fee * close_qty / executed).quantize(USDT_STEP) if executed else ZERO
        events: list[EngineEvent] = []
        position_events: list[EngineEvent] = []
        pnl = ZERO
        position_id = order.position_id
        if close_qty and target is not None:
            position_id = target.position_id
            pnl = self._reduce(acct, target, close_qty, price, close_fee, ts, position_events)
        if open_qty:
            pos = self._increase(acct, order, open_qty, price, fee - close_fee, ts, position_events)
            position_id = pos.position_id
        acct.wallet += pnl - fee
        order.trade_qty += executed
        order.deal_value += notional
        order.fee += fee
        order.realized_pnl += pnl
        order.position_id = order.position_id or position_id
        order.mtime = ts
        self._finish(acct, order, OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PART_FILLED_CANCELED)
        trade = Trade(
            trade_id=self._ids.trade(),
            order_id=order.order_id,
            account=acct.api_key,
            symbol=symbol,
            side=order.direction,  # the book side (a close of a long sells); the REST shape is the dialect's
            qty=executed,
            price=price,
            fee=fee,
            realized_pnl=pnl,
            role=role,
            order_type=order.order_type,
            effect=order.effect,
            client_id=order.client_id,
            reduce_only=order.reduce_only,
            position_id=position_id,
            margin_mode=order.margin_mode,
            position_mode=order.position_mode,
            leverage=order.leverage,
            ctime=ts,
            trade_side=TradeSide.CLOSE if close_qty and not open_qty else TradeSide.OPEN,
            reduced=target.side if close_qty and target is not None else None,
        )
        acct.trades.append(trade)
        cause = reason if order.source == "api" else order.source
        events.append(FillEvent(acct.api_key, trade, cause, acct.wallet, ts))
        events.append(OrderEvent(acct.api_key, "CLOSE", order.snapshot(), ts))
        events += position_events
        events.append(BalanceEvent(acct.api_key, ts))
        return events

    def _reduce(
        self,
        acct: Account,
        pos: Position,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        ts: int,
        events: list[EngineEvent],
    ) -> Decimal:
        entry_part = pos.entry_value if qty == pos.qty else (pos.entry_value * qty / pos.qty).quantize(USDT_STEP)
        exit_value = price * qty
        pnl = exit_value - entry_part if pos.side is PositionSide.LONG else entry_part - exit_value
        pos.qty -= qty
        pos.entry_value -= entry_part
        pos.realized_pnl += pnl
        pos.fee += fee
        pos.mtime = ts
        if pos.qty == 0:
            del acct.positions[(pos.symbol, pos.side)]
            events.append(PositionEvent(acct.api_key, "CLOSE", pos.snapshot(), ts))
            if self.tpsl_after_close == "drop":
                events += self.drop_tpsl(acct, lambda t: t.position_id == pos.position_id, "position_closed", ts)
        else:
            events.append(PositionEvent(acct.api_key, "UPDATE", pos.snapshot(), ts))
        return pnl

    def _increase(
        self,
        acct: Account,
        order: Order,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        ts: int,
        events: list[EngineEvent],
    ) -> Position:
        side = PositionSide.opened_by(order.direction)
        key = (order.symbol, side)
        pos = acct.positions.get(key)
        if pos is None:
            pos = Position(
                position_id=self._ids.position(),
                account=acct.api_key,
                symbol=order.symbol,
                side=side,
                qty=qty,
                entry_value=price * qty,
                leverage=self.leverage_of(acct, order.symbol),
                margin_mode=self.margin_mode_of(acct, order.symbol),
                position_mode=acct.position_mode,
                ctime=ts,
                mtime=ts,
                fee=fee,
            )
            acct.positions[key] = pos
            events.append(PositionEvent(acct.api_key, "OPEN", pos.snapshot(), ts))
        else:
            pos.qty += qty
            pos.entry_value += price * qty
            pos.fee += fee
            pos.mtime = ts
            events.append(PositionEvent(acct.api_key, "UPDATE", pos.snapshot(), ts))
        if not order.tpsl.empty:
            events += self._attach_order_tpsl(acct, pos, order.tpsl, ts)
        return pos

    def _finish(self, acct: Account, order: Order, status: OrderStatus) -> None:
        order.status = status
        order.frozen = ZERO
        acct.open.pop(order.order_id, None)

    USER_CANCEL_REASONS = frozenset({"user", "cancel_all"})

    def _cancel(self, acct: Account, order: Order, reason: str, ts: int) -> list[EngineEvent]:
        if order.trade_qty:
            status = OrderStatus.PART_FILLED_CANCELED
        elif reason in self.USER_CANCEL_REASONS:
            status = OrderStatus.CANCELED
        else:  # the exchange cancelled it (IOC/FOK leftover, post-only, nothing to reduce): dialect status
            status = self.system_cancel_status
        order.mtime = ts
        self._finish(acct, order, status)
        return [
            CancelEvent(acct.api_key, order.snapshot(), reason, ts),
            OrderEvent(acct.api_key, "CLOSE", order.snapshot(), ts),
            BalanceEvent(acct.api_key, ts),
        ]

    # --- the market moves -------------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal, ts: int) -> list[EngineEvent]:
        """One tick of ``symbol``: fill crossed LIMIT orders, then TP/SL, then liquidations."""
        self.prices[symbol] = price
        events: list[EngineEvent] = []
        for acct in self.accounts.values():
            if not acct.open and not acct.positions:
                continue
            for order in [o for o in acct.open.values() if o.symbol == symbol]:
                if order.order_type is OrderType.LIMIT and order.price is not None and order.status.is_open:
                    crossed = price <= order.price if order.direction is Side.BUY else price >= order.price
                    if crossed:
                        events += self._execute(acct, order, order.price, Role.MAKER, ts, "order")
            for pos in acct.symbol_positions(symbol):
                events += self._check_tpsl_trigger(acct, pos, price, ts)
            if self.liquidation:
                for pos in acct.symbol_positions(symbol):
                    liq = self.liquidation_price(acct, pos)
                    if liq is not None and (price <= liq if pos.side is PositionSide.LONG else price >= liq):
                        events.append(TriggerEvent(acct.api_key, "liquidation", pos.snapshot(), liq, price, ts))
                        events += self._close_position(acct, pos, price, ts, "liquidation")
        return events

    def _check_tpsl_trigger(self, acct: Account, pos: Position, price: Decimal, ts: int) -> list[EngineEvent]:
        """Fire the position's pending TP/SL orders whose trigger ``price`` reached (SL first, oldest first).

        A fired leg closes its quantity (None: the whole position) at market, or places a reduce-only LIMIT
        at its order price; the TP/SL order is then done, its other leg included.
        """
        events: list[EngineEvent] = []
        long = pos.side is PositionSide.LONG
        for t in [o for o in acct.tpsl_orders.values() if o.position_id == pos.position_id]:
            if t.order_id not in acct.tpsl_orders or acct.positions.get((pos.symbol, pos.side)) is not pos:
                continue  # done meanwhile, or the position is gone
            legs = t.tpsl
            sl_hit = legs.sl_price is not None and (price <= legs.sl_price if long else price >= legs.sl_price)
            tp_hit = legs.tp_price is not None and (price >= legs.tp_price if long else price <= legs.tp_price)
            if not (sl_hit or tp_hit):
                continue
            kind = "sl" if sl_hit else "tp"
            trigger = legs.sl_price if sl_hit else legs.tp_price
            order_type = legs.sl_order_type if sl_hit else legs.tp_order_type
            order_price = legs.sl_order_price if sl_hit else legs.tp_order_price
            leg_qty = t.sl_qty if sl_hit else t.tp_qty
            qty = pos.qty if leg_qty is None else min(leg_qty, pos.qty)
            assert trigger is not None
            del acct.tpsl_orders[t.order_id]
            t.status, t.mtime = "FILLED", ts
            events.append(TpslEvent(acct.api_key, "CLOSE", t.snapshot(), "trigger_" + kind, ts))
            events.append(TriggerEvent(acct.api_key, kind, pos.snapshot(), trigger, price, ts))
            if order_type is OrderType.LIMIT and order_price is not None:
                order = self._new_order(
                    acct,
                    symbol=pos.symbol,
                    side=pos.side.closing_side,
                    direction=pos.side.closing_side,
                    order_type=OrderType.LIMIT,
                    qty=qty,
                    price=order_price,
                    effect=Effect.GTC,
                    client_id=None,
                    reduce_only=True,
                    trade_side=TradeSide.CLOSE,
                    closes=pos.side,
                    position_id=pos.position_id,
                    tpsl=TpSl(),
                    ts=ts,
                    source=kind,
                )
                events.append(OrderEvent(acct.api_key, "CREATE", order.snapshot(), ts))
                crossed = price >= order_price if long else price <= order_price
                if crossed:
                    events += self._execute(acct, order, price, Role.TAKER, ts, kind)
            else:
                events += self._close_position(acct, pos, price, ts, kind, qty)
        return events

    # --- TP/SL orders -----------------------------------------------------------------------------------

    def new_tpsl_orders(
        self,
        acct: Account,
        pos: Position,
        tpsl: TpSl,
        tp_qty: Decimal | None,
        sl_qty: Decimal | None,
        *,
        kind: str,
        source: str,
        ts: int,
    ) -> tuple[list[TpslOrder], list[EngineEvent]]:
        """Register TP/SL order(s) for ``pos``: one for both legs, or (dialect ``tpsl_legs=split``) one per leg."""
        if self.tpsl_legs == "split" and kind == "TPSL" and tpsl.tp_price is not None and tpsl.sl_price is not None:
            tp_only = TpSl(tp_price=tpsl.tp_price, tp_stop_type=tpsl.tp_stop_type, tp_order_type=tpsl.tp_order_type,
                           tp_order_price=tpsl.tp_order_price)
            sl_only = TpSl(sl_price=tpsl.sl_price, sl_stop_type=tpsl.sl_stop_type, sl_order_type=tpsl.sl_order_type,
                           sl_order_price=tpsl.sl_order_price)
            parts = [(tp_only, tp_qty, None), (sl_only, None, sl_qty)]
        else:
            parts = [(tpsl, tp_qty, sl_qty)]
        made: list[TpslOrder] = []
        events: list[EngineEvent] = []
        for legs, tq, sq in parts:
            t = TpslOrder(
                order_id=self._ids.order(), account=acct.api_key, symbol=pos.symbol, position_id=pos.position_id,
                kind=kind, tpsl=legs, tp_qty=tq, sl_qty=sq, source=source, ctime=ts, mtime=ts,
                side=pos.side.opening_side,
            )
            acct.tpsl_orders[t.order_id] = t
            made.append(t)
            events.append(TpslEvent(acct.api_key, "CREATE", t.snapshot(), "place" if source == "api" else "order", ts))
        return made, events

    def _attach_order_tpsl(self, acct: Account, pos: Position, tpsl: TpSl, ts: int) -> list[EngineEvent]:
        """A filled trade order's TP/SL becomes TP/SL order(s) on the whole position, replacing the TP/SL an
        earlier trade order attached (⚠ undocumented; the mock's reading, see docs/bitunix-dialects.md)."""
        events = self.drop_tpsl(acct, lambda t: t.position_id == pos.position_id and t.source == "order",
                                "replaced", ts)
        _, created = self.new_tpsl_orders(acct, pos, tpsl, None, None, kind="TPSL", source="order", ts=ts)
        return events + created

    def drop_tpsl(self, acct: Account, which: Callable[[TpslOrder], bool], reason: str, ts: int) -> list[EngineEvent]:
        """Remove the pending TP/SL orders ``which(order)`` selects; user cancels are CANCELED, others the
        exchange's own status."""
        events: list[EngineEvent] = []
        for t in [o for o in acct.tpsl_orders.values() if which(o)]:
            del acct.tpsl_orders[t.order_id]
            t.status = "CANCELED" if reason == "cancel" else self.system_cancel_status.value
            t.mtime = ts
            events.append(TpslEvent(acct.api_key, "CLOSE", t.snapshot(), reason, ts))
        return events

    def _close_position(
        self, acct: Account, pos: Position, price: Decimal, ts: int, source: str, qty: Decimal | None = None
    ) -> list[EngineEvent]:
        """Market-close ``qty`` of a position (default all of it) through an internal reduce-only order."""
        order = self._new_order(
            acct,
            symbol=pos.symbol,
            side=pos.side.closing_side,
            direction=pos.side.closing_side,
            order_type=OrderType.MARKET,
            qty=pos.qty if qty is None else qty,
            price=None,
            effect=Effect.IOC,
            client_id=None,
            reduce_only=True,
            trade_side=TradeSide.CLOSE,
            closes=pos.side,
            position_id=pos.position_id,
            tpsl=TpSl(),
            ts=ts,
            source=source,
        )
        events: list[EngineEvent] = [OrderEvent(acct.api_key, "CREATE", order.snapshot(), ts)]
        return events + self._execute(acct, order, price, Role.TAKER, ts, source)

    def liquidation_price(self, acct: Account, pos: Position) -> Decimal | None:
        """Price at which equity backing the position falls to maintenance margin (None if unreachable).

        Isolated positions are backed by their own margin; cross positions by their margin plus the
        account's available balance.
        """
        if pos.qty <= 0:
            return None
        collateral = pos.margin if pos.margin_mode is MarginMode.ISOLATION else pos.margin + acct.available
        step = self.specs[pos.symbol].price_step
        if pos.side is PositionSide.LONG:
            value = (pos.entry_value - collateral) / (pos.qty * (1 - self.mmr))
            return value.quantize(step, ROUND_UP) if value > 0 else None
        value = (pos.entry_value + collateral) / (pos.qty * (1 + self.mmr))
        return value.quantize(step, ROUND_DOWN)

    # --- cancelling and closing -------------------------------------------------------------------------

    def cancel_orders(
        self, api_key: str, symbol: str | None, refs: Iterable[OrderRef], ts: int
    ) -> tuple[list[Order], list[CancelFailure], list[EngineEvent]]:
        acct = self.account(api_key)
        done: list[Order] = []
        failed: list[CancelFailure] = []
        events: list[EngineEvent] = []
        for ref in refs:
            order = self.find_order(acct, ref.order_id, ref.client_id)
            if order is None or (symbol and order.symbol != symbol):
                failed.append(CancelFailure(ref.order_id, ref.client_id, errors.ORDER_NOT_FOUND, "Order not exists"))
                continue
            if not order.status.is_open:
                failed.append(
                    CancelFailure(
                        order.order_id,
                        order.client_id,
                        errors.ABNORMAL_ORDER_STATUS,
                        f"Order status is {order.status.value}",
                    )
                )
                continue
            events += self._cancel(acct, order, "user", ts)
            done.append(order)
        return done, failed, events

    def cancel_all_orders(
        self, api_key: str, symbol: str | None, ts: int
    ) -> tuple[list[Order], list[EngineEvent]]:
        acct = self.account(api_key)
        done: list[Order] = []
        events: list[EngineEvent] = []
        for order in acct.open_orders(symbol):
            events += self._cancel(acct, order, "cancel_all", ts)
            done.append(order)
        return done, events

    def close_all_positions(
        self, api_key: str, symbol: str | None, ts: int
    ) -> tuple[list[tuple[Position, Order]], list[EngineEvent]]:
        acct = self.account(api_key)
        closed: list[tuple[Position, Order]] = []
        events: list[EngineEvent] = []
        for pos in acct.symbol_positions(symbol):
            snapshot = pos.snapshot()
            evs = self._close_position(acct, pos, self.prices[pos.symbol], ts, "close_all")
            order = next(e.order for e in evs if isinstance(e, OrderEvent))
            closed.append((snapshot, acct.orders[order.order_id]))
            events += evs
        return closed, events

    def flash_close_position(
        self, api_key: str, position_id: str, ts: int
    ) -> tuple[Position, Order, list[EngineEvent]]:
        acct = self.account(api_key)
        pos = self.find_position(acct, position_id)
        if pos is None:
            raise ApiError(errors.POSITION_NOT_EXIST, f"Position not exist: {position_id}")
        snapshot = pos.snapshot()
        events = self._close_position(acct, pos, self.prices[pos.symbol], ts, "flash_close")
        order = next(e.order for e in events if isinstance(e, OrderEvent))
        return snapshot, acct.orders[order.order_id], events

    # --- account settings -------------------------------------------------------------------------------

    def change_leverage(self, api_key: str, symbol: str, leverage: int, ts: int) -> list[EngineEvent]:
        acct = self.account(api_key)
        spec = self.spec(symbol)
        if not spec.min_leverage <= leverage <= spec.max_leverage:
            raise ApiError(
                errors.INVALID_LEVERAGE, f"leverage must be {spec.min_leverage}..{spec.max_leverage}"
            )
        if acct.open_orders(symbol):
            raise ApiError(errors.OPEN_ORDERS_EXIST)
        positions = acct.symbol_positions(symbol)
        previous = {p.position_id: p.leverage for p in positions}
        for pos in positions:
            pos.leverage = leverage
        if positions and acct.available < 0:
            for pos in positions:
                pos.leverage = previous[pos.position_id]
            raise ApiError(errors.INSUFFICIENT_BALANCE, "not enough balance for the margin at that leverage")
        acct.leverage[symbol] = leverage
        events: list[EngineEvent] = []
        for pos in positions:
            pos.mtime = ts
            events.append(PositionEvent(api_key, "UPDATE", pos.snapshot(), ts))
        if positions:
            events.append(BalanceEvent(api_key, ts))
        return events

    def change_margin_mode(self, api_key: str, symbol: str, mode: MarginMode) -> None:
        acct = self.account(api_key)
        self.spec(symbol)
        if acct.open_orders(symbol) or acct.symbol_positions(symbol):
            raise ApiError(errors.OPEN_ORDERS_EXIST)
        acct.margin_mode[symbol] = mode

    def change_position_mode(self, api_key: str, mode: PositionMode) -> None:
        acct = self.account(api_key)
        if acct.open or acct.positions:
            raise ApiError(errors.OPEN_ORDERS_EXIST, "position mode cannot change with open orders or positions")
        acct.position_mode = mode

    # --- queries ----------------------------------------------------------------------------------------

    def unrealized_pnl(self, acct: Account, mode: MarginMode | None = None) -> Decimal:
        return sum(
            (
                p.unrealized_pnl(self.prices[p.symbol])
                for p in acct.positions.values()
                if mode is None or p.margin_mode is mode
            ),
            ZERO,
        )

    @staticmethod
    def history_orders(acct: Account) -> list[Order]:
        return [o for o in acct.orders.values() if not o.status.is_open]

