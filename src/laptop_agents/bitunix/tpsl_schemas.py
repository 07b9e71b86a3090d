"""TP/SL orders (``/api/v1/futures/tpsl/*``): outbound requests and the answers, read under every dialect.

Shapes from the docs pages (``tp_sl/*``), BitunixOfficial/open-api Demo/Java (``PlaceTpslOrderRequest``,
``ModifyTpslOrderRequest``, ``PlacePositionTpslOrderRequest``, ``CancelTpslOrderRequest``,
``TpslPendingOrderResp``) and tradingiq/bitunix-client (``documentation/place_tpsl_order.md``,
``get_pending_tpsl_order.md``, its test fixtures). Where they disagree (docs/bitunix-dialects.md) the parser
takes every reading:

* ``tpsl/place_order`` answers ``{orderId}`` (docs) or a list of ``{orderId, clientId}`` (Java SDK, tradingiq's
  fixture, which has one order per leg): :func:`parse_tpsl_ack` returns every id either way. A caller must not
  assume one id means one order with both legs: re-read the pending list.
* pending items name their id ``id`` (docs, SDK, tradingiq); ``orderId`` is accepted too; absent legs come as
  ``null`` or ``""`` (tradingiq's fixture); stop types ``LAST_PRICE``/``MARK_PRICE`` or the push spelling
  ``Last``/``Mark``; order types in any case.

Requests are built so that they mean the same under every reading: every leg sent carries all of its fields
(price, stop type, order type, order price when LIMIT, quantity), so a modify is a full statement of the legs
the order has whether the exchange merges or replaces (dialect ``tpsl_modify``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix._fields import Fields, list_of
from laptop_agents.bitunix.enums import OrderType, StopType


@dataclass(frozen=True, slots=True)
class TpslLeg:
    """One leg (take-profit or stop-loss): trigger price and how it executes."""

    price: Decimal
    stop_type: StopType = StopType.MARK_PRICE
    order_type: OrderType = OrderType.MARKET
    order_price: Decimal | None = None
    qty: Decimal | None = None
    """Base-coin quantity; required by ``tpsl/place_order``/``modify_order``, absent for position TP/SL."""

    def __post_init__(self) -> None:
        if self.price <= 0:
            raise ValueError("a TP/SL trigger price must be > 0")
        if self.order_type is OrderType.LIMIT and self.order_price is None:
            raise ValueError("a LIMIT TP/SL leg needs an order price")
        if self.qty is not None and self.qty <= 0:
            raise ValueError("a TP/SL quantity must be > 0")

    def body(self, prefix: str, with_order: bool = True) -> dict[str, str]:
        out = {f"{prefix}Price": _dec(self.price), f"{prefix}StopType": self.stop_type.value}
        if with_order:
            out[f"{prefix}OrderType"] = self.order_type.value
            if self.order_price is not None:
                out[f"{prefix}OrderPrice"] = _dec(self.order_price)
            if self.qty is not None:
                out[f"{prefix}Qty"] = _dec(self.qty)
        return out


def _legs_body(tp: TpslLeg | None, sl: TpslLeg | None, with_order: bool) -> dict[str, str]:
    if tp is None and sl is None:
        raise ValueError("a TP/SL request needs a take-profit or a stop-loss leg")
    out: dict[str, str] = {}
    for leg, prefix in ((tp, "tp"), (sl, "sl")):
        if leg is None:
            continue
        if with_order and leg.qty is None:
            raise ValueError(f"the {prefix.upper()} leg needs a quantity")
        out.update(leg.body(prefix, with_order))
    return out


@dataclass(frozen=True, slots=True)
class TpslOrderRequest:
    """``tpsl/place_order``: TP/SL for (part of) an open position."""

    symbol: str
    position_id: str
    tp: TpslLeg | None = None
    sl: TpslLeg | None = None

    def to_body(self) -> dict[str, str]:
        return {"symbol": self.symbol, "positionId": self.position_id, **_legs_body(self.tp, self.sl, True)}


@dataclass(frozen=True, slots=True)
class TpslModifyRequest:
    """``tpsl/modify_order``: the full new state of every leg the order has (see the module docstring)."""

    order_id: str
    tp: TpslLeg | None = None
    sl: TpslLeg | None = None

    def to_body(self) -> dict[str, str]:
        return {"orderId": self.order_id, **_legs_body(self.tp, self.sl, True)}


@dataclass(frozen=True, slots=True)
class PositionTpslRequest:
    """``tpsl/position/place_order`` and ``modify_order``: whole-position TP/SL, closed at market on trigger."""

    symbol: str
    position_id: str
    tp: TpslLeg | None = None
    sl: TpslLeg | None = None

    def to_body(self) -> dict[str, str]:
        return {"symbol": self.symbol, "positionId": self.position_id, **_legs_body(self.tp, self.sl, False)}


@dataclass(frozen=True, slots=True)
class TpslAck:
    """The ids a TP/SL call answered (one, or one per leg under the list reading)."""

    order_ids: tuple[str, ...]

    @property
    def order_id(self) -> str:
        return self.order_ids[0]


def parse_tpsl_ack(data: Any) -> TpslAck:
    """``{orderId}`` (docs) or ``[{orderId, clientId}, ...]`` (Java SDK, tradingiq)."""
    items = list_of(data, "rest.tpsl_ack") if isinstance(data, list) else [data]
    ids = tuple(Fields(item, "rest.tpsl_ack").text("orderId", "id") for item in items)
    if not ids:
        raise Fields(data, "rest.tpsl_ack").error("orderId", "no TP/SL order id in the answer", data)
    return TpslAck(ids)


@dataclass(frozen=True, slots=True)
class TpslOrderInfo:
    """One pending TP/SL order (``tpsl/get_pending_orders``)."""

    order_id: str
    position_id: str
    symbol: str
    tp: TpslLeg | None
    sl: TpslLeg | None


def _leg(f: Fields, prefix: str) -> TpslLeg | None:
    price = f.opt_decimal(f"{prefix}Price")
    if price is None:
        return None
    try:
        return TpslLeg(
            price=price,
            stop_type=f.opt_enum(StopType, f"{prefix}StopType") or StopType.MARK_PRICE,
            order_type=f.opt_enum(OrderType, f"{prefix}OrderType") or OrderType.MARKET,
            order_price=f.opt_decimal(f"{prefix}OrderPrice"),
            qty=f.opt_decimal(f"{prefix}Qty"),
        )
    except ValueError as exc:
        raise f.error(f"{prefix}Price", str(exc), price) from None


def parse_tpsl_order(item: Any) -> TpslOrderInfo:
    f = Fields(item, "rest.tpsl_order")
    return TpslOrderInfo(
        order_id=f.text("id", "orderId"),
        position_id=f.text("positionId"),
        symbol=f.text("symbol"),
        tp=_leg(f, "tp"),
        sl=_leg(f, "sl"),
    )


def parse_tpsl_orders(data: Any) -> list[TpslOrderInfo]:
    """A bare list (docs, SDK, tradingiq); ``{orderList: [...]}`` (the history endpoint's shape) is accepted."""
    if isinstance(data, dict) and "orderList" in data:
        data = data["orderList"]
    if data is None:
        return []
    return [parse_tpsl_order(item) for item in list_of(data, "rest.tpsl_orders")]


def _dec(value: Decimal) -> str:
    return format(value, "f")
