"""Account, orders, positions and fills (REST), and the outbound order shape.

⚠ ``account`` may be an object or a one-element list; enums may arrive in any
case; ``ctime``/``mtime`` may be epoch ms or ISO-8601; a market order's price may
be the literal ``"MARKET"``. All of that is absorbed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix._fields import Fields, list_of
from laptop_agents.bitunix.enums import (
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    RoleType,
    StopType,
    TimeInForce,
    TradeSide,
)
from laptop_agents.bitunix.errors import MalformedMessage, excerpt


@dataclass(frozen=True, slots=True)
class AccountInfo:
    margin_coin: str
    available: Decimal
    frozen: Decimal | None
    margin: Decimal | None
    transfer: Decimal | None
    position_mode: PositionMode | None
    cross_unrealized_pnl: Decimal | None
    isolation_unrealized_pnl: Decimal | None
    bonus: Decimal | None


def _parse_account_object(item: Any) -> AccountInfo:
    f = Fields(item, "rest.account")
    return AccountInfo(
        margin_coin=f.text("marginCoin"),
        available=f.decimal("available"),
        frozen=f.opt_decimal("frozen"),
        margin=f.opt_decimal("margin"),
        transfer=f.opt_decimal("transfer"),
        position_mode=f.opt_enum(PositionMode, "positionMode"),
        cross_unrealized_pnl=f.opt_decimal("crossUnrealizedPNL"),
        isolation_unrealized_pnl=f.opt_decimal("isolationUnrealizedPNL"),
        bonus=f.opt_decimal("bonus"),
    )


def parse_account(data: Any, margin_coin: str | None = None) -> AccountInfo:
    """⚠ The docs wrap the account in a list, the SDK parses an object: accept both.

    From a list, the entry for ``margin_coin`` wins; without a match the only
    entry is used; several non-matching entries are ambiguous → malformed.
    """
    if not isinstance(data, list):
        return _parse_account_object(data)
    accounts = [_parse_account_object(item) for item in data]
    if margin_coin is not None:
        for account in accounts:
            if account.margin_coin.upper() == margin_coin.upper():
                return account
    if len(accounts) == 1 and margin_coin is None:
        return accounts[0]
    raise MalformedMessage(
        f"no account entry for margin coin {margin_coin!r} among {len(accounts)}",
        kind="rest.account",
        excerpt=excerpt(data),
    )


@dataclass(frozen=True, slots=True)
class OrderAck:
    order_id: str
    client_id: str | None
    already_existed: bool = False
    """True when placement found the order already on the exchange (a retried
    or repeated clientId), i.e. this call did not create it."""
    resent: bool = False
    """True when an attempt went unanswered, the lookup found nothing and the
    order was sent again (reduce-only only): the unanswered original may still
    land later and execute a second time under the same clientId (where 30042
    covers only open orders), so the caller must not open a new position until
    it can no longer land."""


def parse_order_ack(data: Any) -> OrderAck:
    f = Fields(data, "rest.order_ack")
    return OrderAck(order_id=f.text("orderId"), client_id=f.opt_text("clientId"))


@dataclass(frozen=True, slots=True)
class OrderInfo:
    order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType | None
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    price: Decimal | None
    avg_price: Decimal | None
    client_id: str | None
    reduce_only: bool
    effect: TimeInForce | None
    trade_side: TradeSide | None
    leverage: int | None
    margin_mode: MarginMode | None
    position_mode: PositionMode | None
    fee: Decimal | None
    realized_pnl: Decimal | None
    tp_price: Decimal | None
    tp_stop_type: StopType | None
    sl_price: Decimal | None
    sl_stop_type: StopType | None
    created: datetime | None
    updated: datetime | None


def parse_order(item: Any) -> OrderInfo:
    f = Fields(item, "rest.order")
    return OrderInfo(
        order_id=f.text("orderId"),
        symbol=f.text("symbol"),
        side=f.enum(OrderSide, "side"),
        order_type=f.opt_enum(OrderType, "orderType", "type"),
        status=f.enum(OrderStatus, "status", "orderStatus"),
        qty=f.decimal("qty"),
        filled_qty=f.opt_decimal("tradeQty", "dealAmount") or Decimal(0),
        price=f.opt_order_price("price"),
        avg_price=f.opt_decimal("avgPrice", "averagePrice"),
        client_id=f.opt_text("clientId"),
        reduce_only=f.opt_boolean("reduceOnly", "reductionOnly"),
        effect=f.opt_enum(TimeInForce, "effect"),
        trade_side=f.opt_enum(TradeSide, "tradeSide"),
        leverage=f.opt_integer("leverage"),
        margin_mode=f.opt_enum(MarginMode, "marginMode"),
        position_mode=f.opt_enum(PositionMode, "positionMode"),
        fee=f.opt_decimal("fee"),
        realized_pnl=f.opt_decimal("realizedPNL"),
        tp_price=f.opt_decimal("tpPrice"),
        tp_stop_type=f.opt_enum(StopType, "tpStopType"),
        sl_price=f.opt_decimal("slPrice"),
        sl_stop_type=f.opt_enum(StopType, "slStopType"),
        created=f.opt_time("ctime"),
        updated=f.opt_time("mtime"),
    )


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: tuple[OrderInfo, ...]
    total: int


def parse_order_page(data: Any) -> OrderPage:
    """``{orderList, total}``; a bare list is tolerated (total = its length)."""
    if isinstance(data, list):
        orders = tuple(parse_order(item) for item in data)
        return OrderPage(orders, len(orders))
    f = Fields(data, "rest.order_page")
    orders = tuple(parse_order(item) for item in f.items("orderList"))
    total = f.opt_integer("total")
    return OrderPage(orders, len(orders) if total is None else total)


@dataclass(frozen=True, slots=True)
class CancelSuccess:
    order_id: str | None
    client_id: str | None


@dataclass(frozen=True, slots=True)
class CancelFailure:
    order_id: str | None
    client_id: str | None
    error_code: int | None
    error_msg: str | None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Per-order outcome: a successful call does not mean every cancel succeeded."""

    succeeded: tuple[CancelSuccess, ...]
    failed: tuple[CancelFailure, ...]


def parse_cancel_result(data: Any) -> CancelResult:
    f = Fields(data, "rest.cancel_orders")
    succeeded = []
    for item in f.items("successList"):
        g = Fields(item, "rest.cancel_orders.success")
        if not g.has("orderId", "clientId"):
            raise g.error("orderId", "neither orderId nor clientId", item)
        succeeded.append(CancelSuccess(order_id=g.opt_text("orderId"), client_id=g.opt_text("clientId")))
    failed = []
    for item in f.items("failureList"):
        g = Fields(item, "rest.cancel_orders.failure")
        failed.append(
            CancelFailure(
                order_id=g.opt_text("orderId"),
                client_id=g.opt_text("clientId"),
                error_code=g.opt_integer("errorCode"),
                error_msg=g.opt_text("errorMsg"),
            )
        )
    return CancelResult(tuple(succeeded), tuple(failed))


@dataclass(frozen=True, slots=True)
class PositionInfo:
    position_id: str
    symbol: str
    side: PositionSide
    qty: Decimal
    avg_open_price: Decimal | None
    entry_value: Decimal | None
    leverage: int | None
    margin_mode: MarginMode | None
    position_mode: PositionMode | None
    margin: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal | None
    fee: Decimal | None
    funding: Decimal | None
    liq_price: Decimal | None
    margin_rate: Decimal | None
    created: datetime | None
    updated: datetime | None


def parse_position(item: Any) -> PositionInfo:
    f = Fields(item, "rest.position")
    return PositionInfo(
        position_id=f.text("positionId"),
        symbol=f.text("symbol"),
        side=f.enum(PositionSide, "side"),
        qty=f.decimal("qty"),
        avg_open_price=f.opt_decimal("avgOpenPrice"),
        entry_value=f.opt_decimal("entryValue"),
        leverage=f.opt_integer("leverage"),
        margin_mode=f.opt_enum(MarginMode, "marginMode"),
        position_mode=f.opt_enum(PositionMode, "positionMode"),
        margin=f.opt_decimal("margin"),
        unrealized_pnl=f.opt_decimal("unrealizedPNL"),
        realized_pnl=f.opt_decimal("realizedPNL"),
        fee=f.opt_decimal("fee"),
        funding=f.opt_decimal("funding"),
        liq_price=f.opt_decimal("liqPrice"),
        margin_rate=f.opt_decimal("marginRate"),
        created=f.opt_time("ctime"),
        updated=f.opt_time("mtime"),
    )


def parse_positions(data: Any) -> list[PositionInfo]:
    """A list of positions; ``null`` (no positions) is an empty list."""
    if data is None:
        return []
    if isinstance(data, Mapping) and "positionList" in data:
        data = data["positionList"] or []
    return [parse_position(item) for item in list_of(data, "rest.position")]


@dataclass(frozen=True, slots=True)
class TradeInfo:
    """One fill of one of our orders."""

    trade_id: str
    order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    price: Decimal
    fee: Decimal | None
    realized_pnl: Decimal | None
    role: RoleType | None
    client_id: str | None
    reduce_only: bool
    order_type: OrderType | None
    created: datetime | None
    position_id: str | None = None
    """Not in the documented trade record; read when the exchange sends it (the query accepts ``positionId``)."""
    trade_side: TradeSide | None = None
    """OPEN/CLOSE when the exchange says (ccxt reads it); then ``side`` of a CLOSE fill may be the position's
    side rather than the exit side (dialect ``closing_fill_side``), so ``side`` alone must not decide."""


def parse_trade(item: Any) -> TradeInfo:
    f = Fields(item, "rest.trade")
    return TradeInfo(
        trade_id=f.text("tradeId"),
        order_id=f.text("orderId"),
        symbol=f.text("symbol"),
        side=f.enum(OrderSide, "side"),
        qty=f.decimal("qty"),
        price=f.decimal("price"),
        fee=f.opt_decimal("fee"),
        realized_pnl=f.opt_decimal("realizedPNL"),
        role=f.opt_enum(RoleType, "roleType"),
        client_id=f.opt_text("clientId"),
        reduce_only=f.opt_boolean("reduceOnly"),
        order_type=f.opt_enum(OrderType, "orderType"),
        created=f.opt_time("ctime"),
        position_id=f.opt_text("positionId"),
        trade_side=f.opt_enum(TradeSide, "tradeSide"),
    )


@dataclass(frozen=True, slots=True)
class TradePage:
    trades: tuple[TradeInfo, ...]
    total: int


def parse_trade_page(data: Any) -> TradePage:
    if isinstance(data, list):
        trades = tuple(parse_trade(item) for item in data)
        return TradePage(trades, len(trades))
    f = Fields(data, "rest.trade_page")
    trades = tuple(parse_trade(item) for item in f.items("tradeList"))
    total = f.opt_integer("total")
    return TradePage(trades, len(trades) if total is None else total)


# -- outbound --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """``trade/place_order``. ``client_id`` makes placement idempotent; the REST
    client fills one in when absent so every placement can be retried safely."""

    symbol: str
    side: OrderSide
    qty: Decimal
    order_type: OrderType
    trade_side: TradeSide | None = TradeSide.OPEN
    """None omits ``tradeSide`` (docs: "only required in hedge mode"): a one-way reduce-only close then has
    one meaning under every reading of the hedge-mode close-side convention."""
    price: Decimal | None = None
    effect: TimeInForce | None = None
    client_id: str | None = None
    reduce_only: bool = False
    position_id: str | None = None
    tp_price: Decimal | None = None
    tp_stop_type: StopType | None = None
    tp_order_type: OrderType | None = None
    tp_order_price: Decimal | None = None
    sl_price: Decimal | None = None
    sl_stop_type: StopType | None = None
    sl_order_type: OrderType | None = None
    sl_order_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError("qty must be > 0")
        if self.order_type is OrderType.LIMIT and self.price is None:
            raise ValueError("a LIMIT order needs a price")
        if self.trade_side is TradeSide.CLOSE and not self.position_id and not self.reduce_only:
            raise ValueError("a CLOSE order needs position_id (hedge mode) or reduce_only")

    def to_body(self) -> dict[str, Any]:
        """The JSON body; Decimals as plain strings, absent options omitted."""
        fields: Sequence[tuple[str, Any]] = (
            ("symbol", self.symbol),
            ("side", self.side.value),
            ("tradeSide", self.trade_side.value if self.trade_side else None),
            ("qty", _dec(self.qty)),
            ("orderType", self.order_type.value),
            ("price", _dec(self.price)),
            ("effect", self.effect.value if self.effect else None),
            ("clientId", self.client_id),
            ("reduceOnly", True if self.reduce_only else None),
            ("positionId", self.position_id),
            ("tpPrice", _dec(self.tp_price)),
            ("tpStopType", self.tp_stop_type.value if self.tp_stop_type else None),
            ("tpOrderType", self.tp_order_type.value if self.tp_order_type else None),
            ("tpOrderPrice", _dec(self.tp_order_price)),
            ("slPrice", _dec(self.sl_price)),
            ("slStopType", self.sl_stop_type.value if self.sl_stop_type else None),
            ("slOrderType", self.sl_order_type.value if self.sl_order_type else None),
            ("slOrderPrice", _dec(self.sl_order_price)),
        )
        return {key: value for key, value in fields if value is not None}


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
