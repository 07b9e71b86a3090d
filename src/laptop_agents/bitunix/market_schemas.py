"""Public market data (REST): klines, trading pairs, tickers.

⚠ Kline numbers may be JSON numbers or strings and the sort order is
undocumented: both forms are parsed and the list is sorted by open time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from laptop_agents.bitunix._fields import Fields, check_ohlc, list_of, ms_to_datetime
from laptop_agents.bitunix.enums import MarginMode, SymbolStatus
from laptop_agents.core.models import Candle


@dataclass(frozen=True, slots=True)
class Kline:
    """One REST kline. ``open_ms`` is the bar open time (the ``time`` field)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    base_volume: Decimal
    quote_volume: Decimal
    price_type: str | None = None

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.open_ms)

    def to_candle(self, symbol: str) -> Candle:
        return Candle(
            ts=self.time,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.base_volume,
            symbol=symbol,
        )


def parse_kline(item: Any) -> Kline:
    f = Fields(item, "rest.kline")
    o, h, low, c = f.decimal("open"), f.decimal("high"), f.decimal("low"), f.decimal("close")
    check_ohlc(f, o, h, low, c)
    base, quote = volumes_by_magnitude(
        f.opt_decimal("baseVol", "volume") or Decimal(0), f.opt_decimal("quoteVol") or Decimal(0), low, h
    )
    return Kline(
        open_ms=f.epoch_ms("time", "ts"),
        open=o,
        high=h,
        low=low,
        close=c,
        base_volume=base,
        quote_volume=quote,
        price_type=f.opt_text("type"),
    )


def volumes_by_magnitude(base: Decimal, quote: Decimal, low: Decimal, high: Decimal) -> tuple[Decimal, Decimal]:
    """(base, quote) volume whatever the labels say: the docs' example labels them the other way round.

    Quote volume is base volume times a price inside the bar's range, so the pair whose ratio lands in
    [low, high] (with rounding slack) is the right reading; if only the swapped reading fits, swap.
    """
    if base <= 0 or quote <= 0 or low <= 0:
        return base, quote
    slack = Decimal("0.5")
    fits = low * (1 - slack) <= quote / base <= high * (1 + slack)
    swapped_fits = low * (1 - slack) <= base / quote <= high * (1 + slack)
    return (quote, base) if swapped_fits and not fits else (base, quote)


def parse_klines(data: Any) -> list[Kline]:
    """Kline list sorted ascending by open time, one bar per open time.

    ⚠ Sort order is undocumented, so we sort; a repeated open time keeps the
    last occurrence (the most recent snapshot of that bar).
    """
    by_time: dict[int, Kline] = {}
    for item in list_of(data, "rest.kline"):
        kline = parse_kline(item)
        by_time[kline.open_ms] = kline
    return [by_time[t] for t in sorted(by_time)]


@dataclass(frozen=True, slots=True)
class TradingPair:
    """Contract specification of one symbol."""

    symbol: str
    base: str | None
    quote: str | None
    min_trade_volume: Decimal
    base_precision: int
    quote_precision: int
    min_leverage: int | None
    max_leverage: int | None
    default_leverage: int | None
    default_margin_mode: MarginMode | None
    max_limit_order_volume: Decimal | None
    max_market_order_volume: Decimal | None
    min_buy_price_offset: Decimal | None
    max_sell_price_offset: Decimal | None
    price_protect_scope: Decimal | None
    status: SymbolStatus | None

    @property
    def qty_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.base_precision)

    @property
    def price_tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.quote_precision)


def parse_trading_pair(item: Any) -> TradingPair:
    f = Fields(item, "rest.trading_pair")
    return TradingPair(
        symbol=f.text("symbol"),
        base=f.opt_text("base"),
        quote=f.opt_text("quote"),
        min_trade_volume=f.decimal("minTradeVolume"),
        base_precision=f.integer("basePrecision"),
        quote_precision=f.integer("quotePrecision"),
        min_leverage=f.opt_integer("minLeverage"),
        max_leverage=f.opt_integer("maxLeverage"),
        default_leverage=f.opt_integer("defaultLeverage"),
        default_margin_mode=f.opt_enum(MarginMode, "defaultMarginMode"),
        max_limit_order_volume=f.opt_decimal("maxLimitOrderVolume"),
        max_market_order_volume=f.opt_decimal("maxMarketOrderVolume"),
        min_buy_price_offset=f.opt_decimal("minBuyPriceOffset"),
        max_sell_price_offset=f.opt_decimal("maxSellPriceOffset"),
        price_protect_scope=f.opt_decimal("priceProtectScope"),
        status=f.opt_enum(SymbolStatus, "symbolStatus"),
    )


def parse_trading_pairs(data: Any) -> list[TradingPair]:
    return [parse_trading_pair(item) for item in list_of(data, "rest.trading_pair")]


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last_price: Decimal
    mark_price: Decimal | None
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    base_volume: Decimal | None
    quote_volume: Decimal | None


def parse_ticker(item: Any) -> Ticker:
    f = Fields(item, "rest.ticker")
    return Ticker(
        symbol=f.text("symbol"),
        last_price=f.decimal("lastPrice", "last"),
        mark_price=f.opt_decimal("markPrice"),
        open=f.opt_decimal("open"),
        high=f.opt_decimal("high"),
        low=f.opt_decimal("low"),
        base_volume=f.opt_decimal("baseVol"),
        quote_volume=f.opt_decimal("quoteVol"),
    )


def parse_tickers(data: Any) -> list[Ticker]:
    return [parse_ticker(item) for item in list_of(data, "rest.ticker")]
