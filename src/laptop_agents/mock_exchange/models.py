"""State of the simulated exchange: accounts, orders, positions, trades, and the events they emit.

Plain mutable dataclasses owned by the :class:`~.engine.MatchingEngine`; everything outside the engine gets
snapshots (via :class:`EngineEvent`) or reads through query methods. Money is ``Decimal`` throughout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)
USDT_STEP = Decimal("0.00000001")


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class PositionSide(str, Enum):
    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def opening_side(self) -> Side:
        return Side.BUY if self is PositionSide.LONG else Side.SELL

    @property
    def closing_side(self) -> Side:
        return self.opening_side.opposite

    @staticmethod
    def opened_by(side: Side) -> PositionSide:
        return PositionSide.LONG if side is Side.BUY else PositionSide.SHORT


class OrderType(str, Enum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class Effect(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class TradeSide(str, Enum):
    OPEN = "OPEN"
    CLOSE = "CLOSE"


class OrderStatus(str, Enum):
    INIT = "INIT"
    NEW = "NEW"
    PART_FILLED = "PART_FILLED"
    CANCELED = "CANCELED"
    FILLED = "FILLED"
    PART_FILLED_CANCELED = "PART_FILLED_CANCELED"
    EXPIRED = "EXPIRED"
    SYSTEM_CANCELED = "SYSTEM_CANCELED"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.INIT, OrderStatus.NEW, OrderStatus.PART_FILLED)


class MarginMode(str, Enum):
    ISOLATION = "ISOLATION"
    CROSS = "CROSS"


class PositionMode(str, Enum):
    ONE_WAY = "ONE_WAY"
    HEDGE = "HEDGE"


class Role(str, Enum):
    MAKER = "MAKER"
    TAKER = "TAKER"


@dataclass(frozen=True, slots=True)
class TpSl:
    """Take-profit / stop-loss attached to an order (and, once it fills, to the position)."""

    tp_price: Decimal | None = None
    tp_stop_type: str = "LAST_PRICE"
    tp_order_type: OrderType = OrderType.MARKET
    tp_order_price: Decimal | None = None
    sl_price: Decimal | None = None
    sl_stop_type: str = "LAST_PRICE"
    sl_order_type: OrderType = OrderType.MARKET
    sl_order_price: Decimal | None = None

    @property
    def empty(self) -> bool:
        return self.tp_price is None and self.sl_price is None


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """A parsed ``trade/place_order`` body (types checked; exchange rules are the engine's job)."""

    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    price: Decimal | None = None
    trade_side: TradeSide = TradeSide.OPEN
    position_id: str | None = None
    effect: Effect = Effect.GTC
    client_id: str | None = None
    reduce_only: bool = False
    tpsl: TpSl = field(default_factory=TpSl)


@dataclass(slots=True)
class Order:
    order_id: str
    account: str
    symbol: str
    side: Side
    direction: Side  # the side it trades on the book (a hedge-mode close of a long sells)
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    effect: Effect
    client_id: str | None
    reduce_only: bool
    trade_side: TradeSide
    closes: PositionSide | None  # the position side this order may only reduce, if any
    position_id: str | None
    leverage: int
    margin_mode: MarginMode
    position_mode: PositionMode
    tpsl: TpSl
    ctime: int
    mtime: int
    source: str = "api"
    status: OrderStatus = OrderStatus.NEW
    trade_qty: Decimal = ZERO
    deal_value: Decimal = ZERO
    fee: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    frozen: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.trade_qty

    @property
    def avg_price(self) -> Decimal:
        return self.deal_value / self.trade_qty if self.trade_qty else ZERO

    def snapshot(self) -> Order:
        return copy.copy(self)


@dataclass(slots=True)
class Position:
    position_id: str
    account: str
    symbol: str
    side: PositionSide
    qty: Decimal
    entry_value: Decimal
    leverage: int
    margin_mode: MarginMode
    position_mode: PositionMode
    ctime: int
    mtime: int
    fee: Decimal = ZERO
    funding: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    @property
    def avg_open_price(self) -> Decimal:
        return self.entry_value / self.qty if self.qty else ZERO

    @property
    def margin(self) -> Decimal:
        return (self.entry_value / self.leverage).quantize(USDT_STEP)

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        value = price * self.qty
        pnl = value - self.entry_value if self.side is PositionSide.LONG else self.entry_value - value
        return pnl.quantize(USDT_STEP)

    def snapshot(self) -> Position:
        return copy.copy(self)


@dataclass(slots=True)
class TpslOrder:
    """A pending take-profit/stop-loss order on a position (``tpsl/*`` endpoints, or a trade order's TP/SL).

    ``tp_qty``/``sl_qty`` None means "the whole position when it triggers" (position TP/SL, and the TP/SL a
    trade order carried); a number closes at most that much. Once one leg fires the order is done (the other
    leg of a combined order goes with it, as an OCO pair).
    """

    order_id: str
    account: str
    symbol: str
    position_id: str
    kind: str  # "TPSL" (tpsl/place_order or a trade order's TP/SL) | "POSITION_TPSL"
    tpsl: TpSl
    tp_qty: Decimal | None
    sl_qty: Decimal | None
    source: str  # "api" | "order" (attached by a trade order when it filled)
    ctime: int
    mtime: int
    side: Side = Side.BUY  # the position's opening side (a long's TP/SL: BUY)
    status: str = "NEW"  # NEW, then FILLED (triggered) | CANCELED | SYSTEM_CANCELED

    def snapshot(self) -> TpslOrder:
        return copy.copy(self)


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    order_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    role: Role
    order_type: OrderType
    effect: Effect
    client_id: str | None
    reduce_only: bool
    position_id: str | None
    margin_mode: MarginMode
    position_mode: PositionMode
    leverage: int
    ctime: int
    trade_side: TradeSide = TradeSide.OPEN  # CLOSE when the fill only reduced a position
    reduced: PositionSide | None = None  # the side of the position this fill reduced, if any


@dataclass(slots=True)
class Account:
    api_key: str
    secret: str
    starting_balance: Decimal
    wallet: Decimal
    position_mode: PositionMode = PositionMode.ONE_WAY
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, MarginMode] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    open: dict[str, Order] = field(default_factory=dict)  # index of orders still working, oldest first
    client_ids: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[str, PositionSide], Position] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    tpsl_orders: dict[str, TpslOrder] = field(default_factory=dict)  # pending TP/SL orders, oldest first

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.open.values() if symbol is None or o.symbol == symbol]

    def symbol_positions(self, symbol: str | None = None) -> list[Position]:
        return [p for p in self.positions.values() if symbol is None or p.symbol == symbol]

    @property
    def margin(self) -> Decimal:
        return sum((p.margin for p in self.positions.values()), ZERO)

    @property
    def frozen(self) -> Decimal:
        return sum((o.frozen for o in self.open.values()), ZERO)

    @property
    def available(self) -> Decimal:
        """Wallet minus position margin minus margin frozen by open orders (unrealized PnL excluded)."""
        return self.wallet - self.margin - self.frozen


# --- events -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order was created, changed or finished (``event`` CREATE | UPDATE | CLOSE)."""

    account: str
    event: str
    order: Order
    ts: int


@dataclass(frozen=True, slots=True)
class PositionEvent:
    """A position was opened, changed or closed (``event`` OPEN | UPDATE | CLOSE)."""

    account: str
    event: str
    position: Position
    ts: int


@dataclass(frozen=True, slots=True)
class BalanceEvent:
    account: str
    ts: int


@dataclass(frozen=True, slots=True)
class FillEvent:
    """One execution; ``reason`` says what caused it (order, tp, sl, liquidation, close_all, flash_close)."""

    account: str
    trade: Trade
    reason: str
    wallet_after: Decimal
    ts: int


@dataclass(frozen=True, slots=True)
class CancelEvent:
    account: str
    order: Order
    reason: str
    ts: int


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """A position's take-profit, stop-loss or liquidation price was reached."""

    account: str
    kind: str
    position: Position
    trigger_price: Decimal
    market_price: Decimal
    ts: int


@dataclass(frozen=True, slots=True)
class TpslEvent:
    """A TP/SL order was created, changed or finished (``event`` CREATE | UPDATE | CLOSE; ``reason`` says why)."""

    account: str
    event: str
    order: TpslOrder
    reason: str
    ts: int


EngineEvent = OrderEvent | PositionEvent | BalanceEvent | FillEvent | CancelEvent | TriggerEvent | TpslEvent
