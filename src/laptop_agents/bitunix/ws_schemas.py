"""WebSocket frames: control messages, kline and ticker pushes, private pushes.

:func:`parse_ws_message` classifies one frame and returns a typed message,
:class:`WsUnhandled` for well-formed frames nobody consumes, or raises
:class:`MalformedMessage`; never anything else (property-tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix._fields import Fields, check_ohlc, decode_json
from laptop_agents.bitunix.enums import (
    MarginMode,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionEvent,
    PositionMode,
    PositionSide,
)
from laptop_agents.bitunix.errors import MalformedMessage, excerpt
from laptop_agents.bitunix.intervals import Interval, interval_from_channel

_MAX_KIND_LEN = 40


@dataclass(frozen=True, slots=True)
class WsConnect:
    """``{"op":"connect"}`` greeting (⚠ payload undocumented: not kept)."""


@dataclass(frozen=True, slots=True)
class WsPong:
    """Reply to our ping: ``pong`` echoes what we sent, ``server_time`` is the server's."""

    pong: int | None
    server_time: int | None


@dataclass(frozen=True, slots=True)
class WsLoginAck:
    success: bool


@dataclass(frozen=True, slots=True)
class WsKline:
    """One kline push. The bar it belongs to is ``interval.floor(ts_ms)``."""

    symbol: str
    channel: str
    price_type: str
    interval: Interval
    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    base_volume: Decimal
    quote_volume: Decimal

    @property
    def open_ms(self) -> int:
        return self.interval.floor(self.ts_ms)


@dataclass(frozen=True, slots=True)
class WsTicker:
    """One public ``ticker`` push: ``{"ch":"ticker","symbol":..,"ts":..,"data":{o, la, h, l, b, q, r}}``.

    Only ``symbol`` and ``la`` (the last traded price, > 0) are required: they are what price
    protection uses. The 24 h statistics are optional (⚠ not relied on anywhere).
    """

    symbol: str
    last_price: Decimal
    ts_ms: int | None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    base_volume: Decimal | None = None
    quote_volume: Decimal | None = None


@dataclass(frozen=True, slots=True)
class WsOrderPush:
    event: OrderEvent | None
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
    leverage: int | None
    fee: Decimal | None
    created: datetime | None
    updated: datetime | None
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class WsPositionPush:
    event: PositionEvent | None
    position_id: str
    symbol: str
    side: PositionSide
    qty: Decimal
    entry_value: Decimal | None
    leverage: int | None
    margin_mode: MarginMode | None
    position_mode: PositionMode | None
    margin: Decimal | None
    realized_pnl: Decimal | None
    unrealized_pnl: Decimal | None
    funding: Decimal | None
    fee: Decimal | None
    created: datetime | None
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class WsBalancePush:
    coin: str
    available: Decimal
    frozen: Decimal | None
    margin: Decimal | None
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class WsUnhandled:
    """Well-formed but not for us (another channel, a subscribe echo...).

    ``kind`` is a short, bounded label such as ``op:subscribe`` or
    ``ch:depth_book1``, safe to use as a log/metric key.
    """

    kind: str


WsMessage = (
    WsConnect
    | WsPong
    | WsLoginAck
    | WsKline
    | WsTicker
    | WsOrderPush
    | WsPositionPush
    | WsBalancePush
    | WsUnhandled
)


def _label(prefix: str, value: Any) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return f"{prefix}:{text}"[:_MAX_KIND_LEN]


def parse_ws_message(raw: str | bytes | bytearray | Mapping[str, Any]) -> WsMessage:
    """Classify and parse one WebSocket frame.

    Returns a typed message, :class:`WsUnhandled` for well-formed frames we do
    not consume, or raises :class:`MalformedMessage`. Never anything else.
    """
    msg = raw if isinstance(raw, Mapping) else decode_json(raw, "ws")
    f = Fields(msg, "ws")
    if "op" in msg:
        op = msg["op"]
        if not isinstance(op, str):
            raise f.error("op", "op must be a string", op)
        return _parse_op(f, msg, op)
    if "ch" in msg:
        ch = msg["ch"]
        if not isinstance(ch, str):
            raise f.error("ch", "ch must be a string", ch)
        return _parse_push(msg, ch)
    raise MalformedMessage("frame has neither 'op' nor 'ch'", kind="ws", excerpt=excerpt(msg))


def _parse_op(f: Fields, msg: Mapping[str, Any], op: str) -> WsMessage:
    op_key = op.lower()
    if op_key == "connect":
        return WsConnect()
    if op_key in ("ping", "pong") and ("pong" in msg or op_key == "pong"):
        g = Fields(msg, "ws.pong")
        return WsPong(pong=g.opt_integer("pong"), server_time=g.opt_integer("ping"))
    if op_key == "login":
        return _parse_login(msg)
    return WsUnhandled(_label("op", op))


def _parse_login(msg: Mapping[str, Any]) -> WsLoginAck:
    """⚠ Ack shape unconfirmed: ``data.result`` bool, or a ``code`` (0 = ok)."""
    f = Fields(msg, "ws.login")
    data = msg.get("data")
    if isinstance(data, Mapping) and "result" in data:
        return WsLoginAck(success=Fields(data, "ws.login.data").boolean("result"))
    if f.has("code"):
        return WsLoginAck(success=f.integer("code") == 0)
    if f.has("success", "result"):
        return WsLoginAck(success=f.boolean("success", "result"))
    raise f.error("data", "login reply without result or code", msg)


def _parse_push(msg: Mapping[str, Any], ch: str) -> WsMessage:
    kline_channel = interval_from_channel(ch)
    if kline_channel is not None:
        return _parse_kline_push(msg, ch, *kline_channel)
    if ch == "ticker":
        return _parse_ticker_push(msg)
    if ch == "order":
        return _parse_order_push(msg)
    if ch == "position":
        return _parse_position_push(msg)
    if ch == "balance":
        return _parse_balance_push(msg)
    return WsUnhandled(_label("ch", ch))


def _parse_kline_push(
    msg: Mapping[str, Any], ch: str, price_type: str, interval: Interval
) -> WsKline:
    f = Fields(msg, "ws.kline")
    d = f.obj("data")
    o, h, low, c = d.decimal("o"), d.decimal("h"), d.decimal("l"), d.decimal("c")
    check_ohlc(d, o, h, low, c)
    ts_ms = f.epoch_ms("ts")
    try:
        interval.floor(ts_ms)  # calendar intervals convert via datetime: prove it works
    except (ValueError, OverflowError, OSError) as exc:
        raise f.error("ts", f"cannot place ts in an interval: {exc}", ts_ms) from None
    return WsKline(
        symbol=f.text("symbol"),
        channel=ch,
        price_type=price_type,
        interval=interval,
        ts_ms=ts_ms,
        open=o,
        high=h,
        low=low,
        close=c,
        base_volume=d.opt_decimal("b") or Decimal(0),
        quote_volume=d.opt_decimal("q") or Decimal(0),
    )


def _parse_ticker_push(msg: Mapping[str, Any]) -> WsTicker:
    f = Fields(msg, "ws.ticker")
    d = f.obj("data")
    last = d.decimal("la")
    if last <= 0:
        raise d.error("la", "last price must be > 0", last)
    return WsTicker(
        symbol=f.text("symbol"),
        last_price=last,
        ts_ms=f.opt_epoch_ms("ts"),
        open=d.opt_decimal("o"),
        high=d.opt_decimal("h"),
        low=d.opt_decimal("l"),
        base_volume=d.opt_decimal("b"),
        quote_volume=d.opt_decimal("q"),
    )


def _push_data(msg: Mapping[str, Any], kind: str) -> tuple[Fields, int | None]:
    f = Fields(msg, kind)
    data = msg.get("data")
    if isinstance(data, list) and len(data) == 1:  # tolerate a one-element list
        data = data[0]
    return Fields(data, f"{kind}.data"), f.opt_epoch_ms("ts")


def _parse_order_push(msg: Mapping[str, Any]) -> WsOrderPush:
    d, ts_ms = _push_data(msg, "ws.order")
    return WsOrderPush(
        event=d.opt_enum(OrderEvent, "event"),
        order_id=d.text("orderId"),
        symbol=d.text("symbol"),
        side=d.enum(OrderSide, "side"),
        order_type=d.opt_enum(OrderType, "type", "orderType"),
        status=d.enum(OrderStatus, "orderStatus", "status"),
        qty=d.decimal("qty"),
        filled_qty=d.opt_decimal("dealAmount", "tradeQty") or Decimal(0),
        price=d.opt_order_price("price"),
        avg_price=d.opt_decimal("averagePrice", "avgPrice"),
        client_id=d.opt_text("clientId"),
        reduce_only=d.opt_boolean("reductionOnly", "reduceOnly"),
        leverage=d.opt_integer("leverage"),
        fee=d.opt_decimal("fee"),
        created=d.opt_time("ctime"),
        updated=d.opt_time("mtime"),
        ts_ms=ts_ms,
    )


def _parse_position_push(msg: Mapping[str, Any]) -> WsPositionPush:
    d, ts_ms = _push_data(msg, "ws.position")
    return WsPositionPush(
        event=d.opt_enum(PositionEvent, "event"),
        position_id=d.text("positionId"),
        symbol=d.text("symbol"),
        side=d.enum(PositionSide, "side"),
        qty=d.decimal("qty"),
        entry_value=d.opt_decimal("entryValue"),
        leverage=d.opt_integer("leverage"),
        margin_mode=d.opt_enum(MarginMode, "marginMode"),
        position_mode=d.opt_enum(PositionMode, "positionMode"),
        margin=d.opt_decimal("margin"),
        realized_pnl=d.opt_decimal("realizedPNL"),
        unrealized_pnl=d.opt_decimal("unrealizedPNL"),
        funding=d.opt_decimal("funding"),
        fee=d.opt_decimal("fee"),
        created=d.opt_time("ctime"),
        ts_ms=ts_ms,
    )


def _parse_balance_push(msg: Mapping[str, Any]) -> WsBalancePush:
    d, ts_ms = _push_data(msg, "ws.balance")
    return WsBalancePush(
        coin=d.text("coin"),
        available=d.decimal("available"),
        frozen=d.opt_decimal("frozen"),
        margin=d.opt_decimal("margin"),
        ts_ms=ts_ms,
    )
