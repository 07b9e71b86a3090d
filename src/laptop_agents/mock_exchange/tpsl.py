"""Bitunix's TP/SL endpoints (``/api/v1/futures/tpsl/*``): place, modify, cancel, list, and position TP/SL.

Facts (docs pages ``tp_sl/*``, BitunixOfficial/open-api Demo/Java ``FuturesPath``/``*TpslOrderRequest``/
``TpslPendingOrderResp``, tradingiq/bitunix-client ``documentation/place_tpsl_order.md``,
``get_pending_tpsl_order.md`` and its fixtures), where they agree the mock is strict:

* ``tpsl/place_order {symbol, positionId, tpPrice, tpStopType, tpOrderType, tpOrderPrice, tpQty, sl...}``: the
  position must exist (30004); at least one of ``tpPrice``/``slPrice`` (30006 "Please select TP or SL"); a leg
  needs its quantity (``tpQty``/``slQty``, 10002; docs "at least one", tradingiq's client requires each leg's),
  at most the position's size (30038); a LIMIT leg needs its order price (10002).
* ``tpsl/modify_order {orderId, ...same fields}``: an unknown id is 20007; the same rules.
* ``tpsl/cancel_order {symbol, orderId}``: both required; unknown (or another symbol's) id is 20007.
* ``tpsl/get_pending_orders?symbol&positionId&side&positionMode&skip&limit`` (limit ≤ 100, default 10): a bare
  list of ``{id, positionId, symbol, base, quote, tpPrice, tpStopType, slPrice, slStopType, tpOrderType,
  tpOrderPrice, slOrderType, slOrderPrice, tpQty, slQty}`` (note ``id``, not ``orderId``).
* ``tpsl/position/place_order`` / ``tpsl/position/modify_order {symbol, positionId, tpPrice, tpStopType, slPrice,
  slStopType}``: the position's single whole-position TP/SL, closed at market when triggered (⚠ a second one on
  the same position is refused with 10002: the docs say "each position can only have one").
* Trigger prices: > 0 (30041), on the price step (10008), on the profitable/losing side of the current price
  (long TP above 30020, short TP below 30021, short SL above 30022, long SL below 30023, the official codes).
* Stop types ``MARK_PRICE``/``LAST_PRICE`` and, as on ``trade/place_order``, ``MARK``/``LAST`` (official Python SDK).
* Answers ``{orderId}`` (modify, cancel, position TP/SL); place answers per dialect ``tpsl_place_response``.

Disputed (dialects, docs/bitunix-dialects.md): ``tpsl_legs`` (one order for both legs, or one per leg as in
tradingiq's fixture), ``tpsl_place_response`` (docs' object, or the Java SDK's/tradingiq's list), ``tpsl_modify``
(fields not sent are kept, or cleared). Triggering happens in the matching engine (:mod:`.engine`).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import ApiError
from .models import Account, EngineEvent, OrderType, Position, PositionSide, TpSl, TpslEvent, TpslOrder
from .parsing import ApiRequest, parse_decimal, parse_enum, parse_stop_type
from .wire import dec

if TYPE_CHECKING:
    from .engine import MatchingEngine

TP_ABOVE_MARK = 30020  # "Trigger price for TP should be higher than mark price" (long)
TP_BELOW_MARK = 30021  # short
SL_ABOVE_MARK = 30022  # short
SL_BELOW_MARK = 30023  # long
SELECT_TP_OR_SL = 30006
TPSL_QTY_TOO_LARGE = 30038

PENDING_DEFAULT_LIMIT = 10
PENDING_MAX_LIMIT = 100

_LEG_FIELDS = ("Price", "StopType", "OrderType", "OrderPrice", "Qty")


def _given(body: dict[str, Any], leg: str) -> bool:
    return any(body.get(leg + f) not in (None, "") for f in _LEG_FIELDS)


def parse_legs(body: dict[str, Any], with_orders: bool) -> tuple[TpSl, Decimal | None, Decimal | None]:
    """The TP/SL fields of a request; ``with_orders`` False for position TP/SL (no order type/price/qty)."""
    if not with_orders:
        extra = [k for k in ("tpOrderType", "tpOrderPrice", "tpQty", "slOrderType", "slOrderPrice", "slQty")
                 if body.get(k) not in (None, "")]
        if extra:
            raise ApiError(errors.PARAMETER_ERROR, f"position TP/SL takes no {', '.join(extra)}")
    legs = TpSl(
        tp_price=parse_decimal(body.get("tpPrice"), "tpPrice"),
        tp_stop_type=parse_stop_type(body.get("tpStopType"), "tpStopType"),
        tp_order_type=parse_enum(OrderType, body.get("tpOrderType"), "tpOrderType", OrderType.MARKET),
        tp_order_price=parse_decimal(body.get("tpOrderPrice"), "tpOrderPrice"),
        sl_price=parse_decimal(body.get("slPrice"), "slPrice"),
        sl_stop_type=parse_stop_type(body.get("slStopType"), "slStopType"),
        sl_order_type=parse_enum(OrderType, body.get("slOrderType"), "slOrderType", OrderType.MARKET),
        sl_order_price=parse_decimal(body.get("slOrderPrice"), "slOrderPrice"),
    )
    return legs, parse_decimal(body.get("tpQty"), "tpQty"), parse_decimal(body.get("slQty"), "slQty")


class TpslDesk:
    """The TP/SL endpoints of one exchange, on top of its :class:`~.engine.MatchingEngine`."""

    def __init__(self, engine: MatchingEngine, place_response: str = "object") -> None:
        self.engine = engine
        self.place_response = place_response  # dialect: {orderId} (docs) or [{orderId, clientId}, ...] (SDK)

    # --- checks -----------------------------------------------------------------------------------------

    def _position(self, acct: Account, symbol: str | None, position_id: str | None) -> Position:
        spec = self.engine.spec(symbol)
        if not position_id:
            raise ApiError(errors.PARAMETER_ERROR, "positionId is required")
        pos = self.engine.find_position(acct, position_id)
        if pos is None or pos.symbol != spec.symbol:
            raise ApiError(errors.POSITION_NOT_EXIST, f"Position not exist: {position_id} on {spec.symbol}")
        return pos

    def _check(self, pos: Position, legs: TpSl, tp_qty: Decimal | None, sl_qty: Decimal | None,
               with_qty: bool) -> None:
        if legs.tp_price is None and legs.sl_price is None:
            raise ApiError(SELECT_TP_OR_SL, "Please select TP or SL: tpPrice or slPrice is required")
        spec = self.engine.specs[pos.symbol]
        ref = self.engine.price(pos.symbol)
        long = pos.side is PositionSide.LONG
        for value, name in ((legs.tp_price, "tpPrice"), (legs.sl_price, "slPrice"),
                            (legs.tp_order_price, "tpOrderPrice"), (legs.sl_order_price, "slOrderPrice")):
            if value is None:
                continue
            if value <= 0:
                raise ApiError(errors.TRIGGER_PRICE_NOT_POSITIVE, f"{name} must be > 0")
            if value % spec.price_step != 0:
                raise ApiError(errors.VALUE_NOT_COMPLY, f"{name} {value} exceeds quotePrecision")
        for price, qty, order_type, order_price, leg in (
            (legs.tp_price, tp_qty, legs.tp_order_type, legs.tp_order_price, "tp"),
            (legs.sl_price, sl_qty, legs.sl_order_type, legs.sl_order_price, "sl"),
        ):
            if price is None:
                if qty is not None:
                    raise ApiError(errors.PARAMETER_ERROR, f"{leg}Qty given without {leg}Price")
                continue
            if order_type is OrderType.LIMIT and order_price is None:
                raise ApiError(errors.PARAMETER_ERROR, f"{leg}OrderPrice is required when {leg}OrderType is LIMIT")
            if with_qty:
                if qty is None:
                    raise ApiError(errors.PARAMETER_ERROR, f"{leg}Qty is required with {leg}Price")
                if qty <= 0 or qty % spec.qty_step != 0:
                    raise ApiError(errors.VALUE_NOT_COMPLY, f"{leg}Qty {qty} is not a positive multiple of "
                                   f"{spec.qty_step}")
                if qty > pos.qty:
                    raise ApiError(TPSL_QTY_TOO_LARGE, f"TP/SL amount {qty} exceeds the position size {pos.qty}")
        if legs.tp_price is not None and (legs.tp_price <= ref if long else legs.tp_price >= ref):
            raise ApiError(TP_ABOVE_MARK if long else TP_BELOW_MARK,
                           f"Trigger price for TP should be {'higher' if long else 'lower'} than mark price "
                           f"({legs.tp_price} vs {ref})")
        if legs.sl_price is not None and (legs.sl_price >= ref if long else legs.sl_price <= ref):
            raise ApiError(SL_BELOW_MARK if long else SL_ABOVE_MARK,
                           f"Trigger price for SL should be {'lower' if long else 'higher'} than mark price "
                           f"({legs.sl_price} vs {ref})")

    def _pending(self, acct: Account, order_id: str | None, symbol: str | None = None) -> TpslOrder:
        if not order_id:
            raise ApiError(errors.PARAMETER_ERROR, "orderId is required")
        t = acct.tpsl_orders.get(order_id)
        if t is None or (symbol is not None and t.symbol != symbol):
            raise ApiError(errors.ORDER_NOT_FOUND, f"TP/SL order {order_id} not exists")
        return t

    # --- endpoints (each returns the envelope's data and the engine events it caused) -------------------

    def place(self, r: ApiRequest, ts: int) -> tuple[Any, list[EngineEvent]]:
        acct = self.engine.account(r.api_key or "")
        pos = self._position(acct, r.text("symbol", required=True), r.text("positionId", required=True))
        legs, tp_qty, sl_qty = parse_legs(r.body, with_orders=True)
        self._check(pos, legs, tp_qty, sl_qty, with_qty=True)
        made, events = self.engine.new_tpsl_orders(acct, pos, legs, tp_qty, sl_qty, kind="TPSL", source="api",
                                                   ts=ts)
        if self.place_response == "list":
            return [{"orderId": t.order_id, "clientId": None} for t in made], events
        return {"orderId": made[0].order_id}, events

    def modify(self, r: ApiRequest, ts: int) -> tuple[Any, list[EngineEvent]]:
        acct = self.engine.account(r.api_key or "")
        t = self._pending(acct, r.text("orderId", required=True))
        if t.kind == "POSITION_TPSL":
            raise ApiError(errors.PARAMETER_ERROR, f"{t.order_id} is a position TP/SL: use tpsl/position/modify_order")
        return self._modify(acct, t, r.body, with_orders=True, ts=ts)

    def _modify(self, acct: Account, t: TpslOrder, body: dict[str, Any], with_orders: bool,
                ts: int) -> tuple[Any, list[EngineEvent]]:
        pos = self.engine.find_position(acct, t.position_id)
        if pos is None:  # left listed after its position closed (dialect tpsl_after_close=keep)
            raise ApiError(errors.POSITION_NOT_EXIST, f"Position not exist: {t.position_id}")
        given, tp_qty, sl_qty = parse_legs(body, with_orders)
        tp_sent, sl_sent = _given(body, "tp"), _given(body, "sl")
        if self.engine.tpsl_legs == "split" and t.kind == "TPSL":
            has, other, other_sent = ("tp", "sl", sl_sent) if t.tpsl.tp_price is not None else ("sl", "tp", tp_sent)
            if other_sent:
                raise ApiError(errors.PARAMETER_ERROR, f"TP/SL order {t.order_id} has only a {has.upper()} leg: "
                               f"{other}* fields are not allowed")
        if with_orders and tp_qty is None and sl_qty is None:
            raise ApiError(errors.PARAMETER_ERROR, "tpQty or slQty is required")
        self._check(pos, given, tp_qty, sl_qty, with_qty=with_orders)
        if self.engine.tpsl_modify == "merge":  # a leg not sent keeps its values
            legs = t.tpsl
            if tp_sent:
                legs = replace(legs, tp_price=given.tp_price, tp_stop_type=given.tp_stop_type,
                               tp_order_type=given.tp_order_type, tp_order_price=given.tp_order_price)
            if sl_sent:
                legs = replace(legs, sl_price=given.sl_price, sl_stop_type=given.sl_stop_type,
                               sl_order_type=given.sl_order_type, sl_order_price=given.sl_order_price)
            new_tp_qty = tp_qty if tp_sent else t.tp_qty
            new_sl_qty = sl_qty if sl_sent else t.sl_qty
        else:  # "replace": the order becomes exactly what was sent (a leg not sent is removed)
            legs, new_tp_qty, new_sl_qty = given, tp_qty, sl_qty
        t.tpsl, t.mtime = legs, ts
        t.tp_qty = new_tp_qty if with_orders and legs.tp_price is not None else None
        t.sl_qty = new_sl_qty if with_orders and legs.sl_price is not None else None
        if t.source == "order":
            t.source = "api"  # changed by the user: the next entry's TP/SL no longer replaces it
        return {"orderId": t.order_id}, [TpslEvent(acct.api_key, "UPDATE", t.snapshot(), "modify", ts)]

    def cancel(self, r: ApiRequest, ts: int) -> tuple[Any, list[EngineEvent]]:
        acct = self.engine.account(r.api_key or "")
        symbol = self.engine.spec(r.text("symbol", required=True)).symbol
        t = self._pending(acct, r.text("orderId", required=True), symbol)
        events = self.engine.drop_tpsl(acct, lambda o: o.order_id == t.order_id, "cancel", ts)
        return {"orderId": t.order_id}, events

    def place_position(self, r: ApiRequest, ts: int) -> tuple[Any, list[EngineEvent]]:
        acct = self.engine.account(r.api_key or "")
        pos = self._position(acct, r.text("symbol", required=True), r.text("positionId", required=True))
        if any(t.position_id == pos.position_id and t.kind == "POSITION_TPSL" for t in acct.tpsl_orders.values()):
            raise ApiError(errors.PARAMETER_ERROR, f"position {pos.position_id} already has a position TP/SL order "
                           "(one per position): use tpsl/position/modify_order")
        legs, _, _ = parse_legs(r.body, with_orders=False)
        self._check(pos, legs, None, None, with_qty=False)
        made, events = self.engine.new_tpsl_orders(acct, pos, legs, None, None, kind="POSITION_TPSL",
                                                   source="api", ts=ts)
        return {"orderId": made[0].order_id}, events

    def modify_position(self, r: ApiRequest, ts: int) -> tuple[Any, list[EngineEvent]]:
        acct = self.engine.account(r.api_key or "")
        pos = self._position(acct, r.text("symbol", required=True), r.text("positionId", required=True))
        t = next((o for o in acct.tpsl_orders.values()
                  if o.position_id == pos.position_id and o.kind == "POSITION_TPSL"), None)
        if t is None:
            raise ApiError(errors.ORDER_NOT_FOUND, f"position {pos.position_id} has no position TP/SL order")
        return self._modify(acct, t, r.body, with_orders=False, ts=ts)

    def position_order_id(self, r: ApiRequest) -> str | None:
        """The id of the position TP/SL a ``tpsl/position/*`` request names (None if there is none)."""
        acct = self.engine.account(r.api_key or "")
        pid = r.text("positionId")
        return next((t.order_id for t in acct.tpsl_orders.values()
                     if t.position_id == pid and t.kind == "POSITION_TPSL"), None)

    def pending(self, r: ApiRequest) -> Any:
        acct = self.engine.account(r.api_key or "")
        symbol, position_id = r.text("symbol"), r.text("positionId")
        if symbol:
            self.engine.spec(symbol)
        r.integer("side")  # documented int32 filters: type-checked, not applied (⚠ meaning undocumented)
        r.integer("positionMode")
        skip = r.integer("skip", 0, lo=0) or 0
        limit = r.integer("limit", PENDING_DEFAULT_LIMIT, lo=1, hi=PENDING_MAX_LIMIT) or PENDING_DEFAULT_LIMIT
        rows = [t for t in acct.tpsl_orders.values()
                if (symbol is None or t.symbol == symbol) and (position_id is None or t.position_id == position_id)]
        rows.sort(key=lambda t: (t.ctime, t.order_id), reverse=True)
        return [self.row(acct, t) for t in rows[skip: skip + limit]]

    def row(self, acct: Account, t: TpslOrder) -> dict[str, Any]:
        """One ``get_pending_orders`` item; a whole-position leg reports the position's current size."""
        spec = self.engine.specs[t.symbol]
        pos = self.engine.find_position(acct, t.position_id)
        size = pos.qty if pos is not None else None
        legs = t.tpsl
        tp, sl = legs.tp_price is not None, legs.sl_price is not None
        return {
            "id": t.order_id,
            "positionId": t.position_id,
            "symbol": t.symbol,
            "base": spec.base,
            "quote": spec.quote,
            "tpPrice": dec(legs.tp_price),
            "tpStopType": legs.tp_stop_type if tp else None,
            "slPrice": dec(legs.sl_price),
            "slStopType": legs.sl_stop_type if sl else None,
            "tpOrderType": legs.tp_order_type.value if tp else None,
            "tpOrderPrice": dec(legs.tp_order_price) if tp else None,
            "slOrderType": legs.sl_order_type.value if sl else None,
            "slOrderPrice": dec(legs.sl_order_price) if sl else None,
            "tpQty": dec(t.tp_qty if t.tp_qty is not None else size) if tp else None,
            "slQty": dec(t.sl_qty if t.sl_qty is not None else size) if sl else None,
        }
