"""Bitunix JSON shapes: engine objects and candles as the REST API and WebSocket present them.

One module owns every field name, so the shapes can be checked against the reference page in one place.
Numbers are strings (as Bitunix sends them) except ids-as-ints the page shows as ints (``leverage``, times).
Where the page is unsure (⚠) the choice is a config option (see :class:`~.config.MockExchangeConfig`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .config import MockExchangeConfig, SymbolSpec
from .klines import Candle
from .models import ZERO, Account, Order, Position, TpSl, TpslOrder, Trade, TradeSide

JSON = dict[str, Any]


def dec(value: Decimal | None) -> str | None:
    """A Decimal as a plain string without exponent or trailing zeros (``95000``, ``0.001``)."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def units(value: int, decimals: int) -> str:
    """An integer amount of 10**-decimals units as a fixed-point string (``951234, 1 -> "95123.4"``)."""
    return format(Decimal(value).scaleb(-decimals), "f")


def iso_ms(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def iso_ns(ts_ms: int) -> str:
    """ISO-8601 with nine fractional digits, as the real exchange's private pushes carry (the sub-ms digits
    are deterministic filler: the engine counts in ms, a client must not choke on them)."""
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}{(ts_ms * 7919) % 1_000_000:06d}Z"


# --- market ---------------------------------------------------------------------------------------------


def trading_pair(spec: SymbolSpec) -> JSON:
    return {
        "symbol": spec.symbol,
        "base": spec.base,
        "quote": spec.quote,
        "minTradeVolume": dec(spec.min_trade_volume),
        "minBuyPriceOffset": dec(spec.min_buy_price_offset),
        "maxSellPriceOffset": dec(spec.max_sell_price_offset),
        "maxLimitOrderVolume": dec(spec.max_limit_order_volume),
        "maxMarketOrderVolume": dec(spec.max_market_order_volume),
        "basePrecision": spec.base_precision,
        "quotePrecision": spec.quote_precision,
        "minLeverage": spec.min_leverage,
        "maxLeverage": spec.max_leverage,
        "defaultLeverage": spec.default_leverage,
        "defaultMarginMode": spec.default_margin_mode,
        "priceProtectScope": dec(spec.price_protect_scope),
        "symbolStatus": spec.symbol_status,
    }


class CandleFormat:
    """Formats candles of one symbol (price and volume decimals come from its spec)."""

    def __init__(self, spec: SymbolSpec, number_format: str = "string", swap_volumes: bool = False) -> None:
        self._pd = spec.quote_precision
        self._vd = spec.base_precision
        self._numbers = number_format == "number"
        self._swap = swap_volumes  # dialect kline_volumes=swapped: labels as in the docs' example

    def price(self, value: int) -> str:
        return units(value, self._pd)

    def base(self, value: int) -> str:
        return units(value, self._vd)

    def quote(self, value: int) -> str:
        return units(value, self._pd + self._vd)

    def rest(self, candle: Candle, kline_type: str) -> JSON:
        bar = candle.bar
        fields: dict[str, Any] = {
            "open": self.price(bar.open),
            "high": self.price(bar.high),
            "low": self.price(bar.low),
            "close": self.price(bar.close),
            "quoteVol": self.quote(bar.quote_vol),
            "baseVol": self.base(bar.base_vol),
        }
        if self._swap:
            fields["quoteVol"], fields["baseVol"] = fields["baseVol"], fields["quoteVol"]
        if self._numbers:
            fields = {k: float(v) for k, v in fields.items()}
        return {**fields, "time": candle.time, "type": kline_type}

    def push_data(self, candle: Candle) -> JSON:
        """``data`` of a ``market_kline_*`` push: always strings, exactly ``o c h l b q``."""
        bar = candle.bar
        return {
            "o": self.price(bar.open),
            "c": self.price(bar.close),
            "h": self.price(bar.high),
            "l": self.price(bar.low),
            "b": self.base(bar.base_vol),
            "q": self.quote(bar.quote_vol),
        }


# --- trading --------------------------------------------------------------------------------------------


def _tpsl_fields(t: TpSl) -> JSON:
    return {
        "tpPrice": dec(t.tp_price),
        "tpStopType": t.tp_stop_type if t.tp_price is not None else None,
        "tpOrderType": t.tp_order_type.value if t.tp_price is not None else None,
        "tpOrderPrice": dec(t.tp_order_price),
        "slPrice": dec(t.sl_price),
        "slStopType": t.sl_stop_type if t.sl_price is not None else None,
        "slOrderType": t.sl_order_type.value if t.sl_price is not None else None,
        "slOrderPrice": dec(t.sl_order_price),
    }


def order_rest(o: Order) -> JSON:
    """REST order object (pending, detail and history share it)."""
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "qty": dec(o.qty),
        "tradeQty": dec(o.trade_qty),
        "positionMode": o.position_mode.value,
        "marginMode": o.margin_mode.value,
        "leverage": o.leverage,
        # Market orders have no limit price; a third-party client's fixtures show the literal "MARKET".
        "price": dec(o.price) if o.price is not None else "MARKET",
        "side": o.side.value,
        "orderType": o.order_type.value,
        "effect": o.effect.value,
        "clientId": o.client_id,
        "reduceOnly": o.reduce_only,
        "status": o.status.value,
        "fee": dec(o.fee),
        "realizedPNL": dec(o.realized_pnl),
        **_tpsl_fields(o.tpsl),
        "ctime": o.ctime,
        "mtime": o.mtime,
    }


def trade_rest(t: Trade, closing_fill_side: str = "exit", trade_side_field: bool = False) -> JSON:
    """REST trade. Dialect: a closing fill's ``side`` is the position's side (``closing_fill_side=position``,
    what ccxt's flip implies) or the exit side; ``tradeSide`` is present only with ``trade_side_field``."""
    side = t.side
    if t.trade_side is TradeSide.CLOSE and t.reduced is not None:
        side = t.reduced.opening_side if closing_fill_side == "position" else t.reduced.closing_side
    extra: JSON = {"tradeSide": t.trade_side.value} if trade_side_field else {}
    return {
        "tradeId": t.trade_id,
        "orderId": t.order_id,
        "symbol": t.symbol,
        "qty": dec(t.qty),
        "positionMode": t.position_mode.value,
        "marginMode": t.margin_mode.value,
        "leverage": t.leverage,
        "price": dec(t.price),
        "side": side.value,
        **extra,
        "orderType": t.order_type.value,
        "effect": t.effect.value,
        "clientId": t.client_id,
        "reduceOnly": t.reduce_only,
        "fee": dec(t.fee),
        "realizedPNL": dec(t.realized_pnl),
        "ctime": t.ctime,
        "roleType": t.role.value,
    }


def position_rest(
    p: Position, price: Decimal, liq_price: Decimal | None, mmr: Decimal, *, admin: bool = False
) -> JSON:
    """REST position; ``marginRate`` = maintenance margin / (margin + unrealized PnL), 1 when exhausted.

    As the real exchange answers (third-party fixtures): ``side`` BUY/SELL and ``ctime``/``mtime`` digit
    strings. ``admin=True`` keeps LONG/SHORT and integer times for the test-only admin state.
    """
    upnl = p.unrealized_pnl(price)
    margin = p.margin
    equity = margin + upnl
    margin_rate = (p.entry_value * mmr / equity).quantize(Decimal("0.0001")) if equity > 0 else Decimal(1)
    return {
        "positionId": p.position_id,
        "symbol": p.symbol,
        "qty": dec(p.qty),
        "entryValue": dec(p.entry_value),
        "side": p.side.value if admin else p.side.opening_side.value,
        "marginMode": p.margin_mode.value,
        "positionMode": p.position_mode.value,
        "leverage": p.leverage,
        "fee": dec(p.fee),
        "funding": dec(p.funding),
        "realizedPNL": dec(p.realized_pnl),
        "margin": dec(margin),
        "unrealizedPNL": dec(upnl),
        "liqPrice": dec(liq_price) if liq_price is not None else "0",
        "marginRate": dec(margin_rate),
        "avgOpenPrice": dec(p.avg_open_price.quantize(Decimal("0.00000001"))),
        "ctime": p.ctime if admin else str(p.ctime),
        "mtime": p.mtime if admin else str(p.mtime),
    }


def account_rest(a: Account, margin_coin: str, cross_upnl: Decimal, isolation_upnl: Decimal) -> JSON:
    available = a.available
    return {
        "marginCoin": margin_coin,
        "available": dec(available),
        "frozen": dec(a.frozen),
        "margin": dec(a.margin),
        "transfer": dec(max(ZERO, available)),
        "positionMode": a.position_mode.value,
        "crossUnrealizedPNL": dec(cross_upnl),
        "isolationUnrealizedPNL": dec(isolation_upnl),
        "bonus": "0",
    }


# --- private pushes -------------------------------------------------------------------------------------


class PrivateFormat:
    """Private push payloads; times as ISO-8601 strings or epoch ms (config ``private_time_format``)."""

    def __init__(self, config: MockExchangeConfig) -> None:
        self._time_format = config.private_time_format
        self._title = config.private_enum_style == "title"

    def enum(self, value: str) -> str:
        return value.title() if self._title else value

    def time(self, ts: int) -> str | int:
        if self._time_format == "iso_ns":
            return iso_ns(ts)
        return iso_ms(ts) if self._time_format == "iso" else ts

    def order(self, event: str, o: Order) -> JSON:
        return {
            "event": event,
            "orderId": o.order_id,
            "symbol": o.symbol,
            "positionType": o.margin_mode.value,
            "positionMode": o.position_mode.value,
            "side": self.enum(o.side.value),
            "effect": o.effect.value,
            "type": self.enum(o.order_type.value),
            "qty": dec(o.qty),
            "reductionOnly": o.reduce_only,
            "price": dec(o.price) if o.price is not None else "0",
            "ctime": self.time(o.ctime),
            "mtime": self.time(o.mtime),
            "leverage": str(o.leverage),
            "orderStatus": o.status.value,
            "fee": dec(o.fee),
            "averagePrice": dec(o.avg_price.quantize(Decimal("0.00000001"))) if o.trade_qty else "0",
            "dealAmount": dec(o.trade_qty),
            "clientId": o.client_id,
            **_tpsl_fields(o.tpsl),
        }

    def tpsl(self, event: str, t: TpslOrder, leverage: int, position_mode: str) -> JSON:
        """``tpsl`` channel (docs' TP/SL order channel; tradingiq: ``type`` TPSL|POSITION_TPSL, stop types and
        order types as ``Last``/``Market`` where pushes use title case, quantities as strings)."""
        legs = t.tpsl
        tp, sl = legs.tp_price is not None, legs.sl_price is not None

        def stop(value: str) -> str:
            return value.split("_")[0].title() if self._title else value

        return {
            "event": event,
            "positionId": t.position_id,
            "orderId": t.order_id,
            "symbol": t.symbol,
            "leverage": str(leverage),
            "side": self.enum(t.side.value),
            "positionMode": position_mode,
            "status": t.status,
            "ctime": self.time(t.ctime),
            "type": t.kind,
            "tpQty": dec(t.tp_qty) if tp else None,
            "slQty": dec(t.sl_qty) if sl else None,
            "tpStopType": stop(legs.tp_stop_type) if tp else None,
            "tpPrice": dec(legs.tp_price),
            "tpOrderType": self.enum(legs.tp_order_type.value) if tp else None,
            "tpOrderPrice": dec(legs.tp_order_price),
            "slStopType": stop(legs.sl_stop_type) if sl else None,
            "slPrice": dec(legs.sl_price),
            "slOrderType": self.enum(legs.sl_order_type.value) if sl else None,
            "slOrderPrice": dec(legs.sl_order_price),
        }

    def position(self, event: str, p: Position, price: Decimal) -> JSON:
        return {
            "event": event,
            "positionId": p.position_id,
            "marginMode": p.margin_mode.value,
            "positionMode": p.position_mode.value,
            "side": p.side.value,
            "leverage": str(p.leverage),
            "margin": dec(p.margin),
            "ctime": self.time(p.ctime),
            "qty": dec(p.qty),
            "entryValue": dec(p.entry_value),
            "symbol": p.symbol,
            "realizedPNL": dec(p.realized_pnl),
            "unrealizedPNL": dec(p.unrealized_pnl(price) if p.qty else ZERO),
            "funding": dec(p.funding),
            "fee": dec(p.fee),
        }

    @staticmethod
    def balance(a: Account, coin: str, isolation_margin: Decimal, isolation_frozen: Decimal) -> JSON:
        margin = a.margin
        frozen = a.frozen
        return {
            "coin": coin,
            "available": dec(a.available),
            "frozen": dec(frozen),
            "isolationFrozen": dec(isolation_frozen),
            "crossFrozen": dec(frozen - isolation_frozen),
            "margin": dec(margin),
            "isolationMargin": dec(isolation_margin),
            "crossMargin": dec(margin - isolation_margin),
            "expMoney": "0",
        }
