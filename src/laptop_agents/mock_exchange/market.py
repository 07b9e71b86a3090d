"""Market data of every listed symbol: price paths, candles, tickers, depth. Pure apart from being fed time.

The server advances this with the market clock; REST handlers and the WebSocket hub only read from it, so
both see the same prices and candles at the same market time.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .config import MockExchangeConfig, SymbolSpec
from .klines import CandleBook
from .pricepath import Bar, PathParams, PricePath, Tick
from .wire import JSON, CandleFormat, units

DAY_MINUTES = 1440
DEPTH_MAX = 200


@dataclass
class SymbolMarket:
    spec: SymbolSpec
    path: PricePath
    book: CandleBook
    fmt: CandleFormat
    day_cache: tuple[int, Bar | None] | None = None

    def day_bar(self) -> Bar | None:
        """Rolling 24 h aggregate: cached complete minutes plus the current minute."""
        cur = self.path.current_minute
        if self.day_cache is None or self.day_cache[0] != cur:
            agg: Bar | None = None
            for bar in self.path.bars(cur - DAY_MINUTES + 1, cur - 1):
                agg = bar if agg is None else agg.then(bar)
            self.day_cache = (cur, agg)
        agg = self.day_cache[1]
        current = self.path.bar(cur)
        if agg is None:
            return current
        return agg if current is None else agg.then(current)


class MarketData:
    """All symbols' paths and candle books, anchored at the market clock's start time."""

    def __init__(self, config: MockExchangeConfig, start_ms: int) -> None:
        self.funding_rate = config.funding_rate
        self.symbols: dict[str, SymbolMarket] = {}
        history_ms = int(config.history_days * 86_400_000)
        for spec in config.symbols:
            params = PathParams(
                tick_ms=config.tick_ms,
                price_decimals=spec.quote_precision,
                volume_decimals=spec.base_precision,
                annual_volatility=config.annual_volatility,
            )
            path = PricePath(
                seed=config.seed,
                symbol=spec.symbol,
                start_ms=start_ms,
                start_price=spec.start_price,
                history_ms=history_ms,
                params=params,
            )
            self.symbols[spec.symbol] = SymbolMarket(
                spec, path, CandleBook(path), CandleFormat(spec, config.kline_number_format, config.kline_volumes == "swapped")
            )

    def get(self, symbol: str) -> SymbolMarket | None:
        return self.symbols.get(symbol)

    def advance(self, market_ms: int) -> list[tuple[str, list[Tick]]]:
        """Generate ticks up to ``market_ms`` for every symbol; return the new ticks per symbol."""
        out = []
        for symbol, m in self.symbols.items():
            ticks = m.path.advance_to(market_ms)
            if ticks:
                out.append((symbol, ticks))
        return out

    def last_price(self, symbol: str) -> Decimal:
        return self.symbols[symbol].path.last_price

    # --- derived views ----------------------------------------------------------------------------------

    def ticker(self, symbol: str) -> JSON:
        """``market/tickers`` entry: rolling 24 h open/high/low/volumes; mark price = last price."""
        m = self.symbols[symbol]
        fmt = m.fmt
        last = fmt.price(m.path.last_tick.price)
        day = m.day_bar()
        return {
            "symbol": symbol,
            "markPrice": last,
            "lastPrice": last,
            "open": fmt.price(day.open) if day else last,
            "last": last,
            "quoteVol": fmt.quote(day.quote_vol) if day else "0",
            "baseVol": fmt.base(day.base_vol) if day else "0",
            "high": fmt.price(day.high) if day else last,
            "low": fmt.price(day.low) if day else last,
        }

    def depth(self, symbol: str, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        """A synthetic book around the last price: best bid = last, best ask = last + one tick.

        Quantities are a deterministic hash of the level and the minute, so the book is stable between
        ticks and reproducible under a seed.
        """
        m = self.symbols[symbol]
        last = m.path.last_tick.price
        minute = m.path.current_minute
        vd = m.spec.base_precision
        pd = m.spec.quote_precision
        n = max(1, min(limit, DEPTH_MAX))

        def qty(level_price: int) -> str:
            h = (level_price * 2654435761 ^ minute * 40503) & 0xFFFFFFFF
            return units(1 + h % (5 * 10**vd), vd)

        asks = [[units(last + i, pd), qty(last + i)] for i in range(1, n + 1)]
        bids = [[units(last - i, pd), qty(last - i)] for i in range(0, n) if last - i > 0]
        return asks, bids

    def recent_trades(self, symbol: str, since_ts: int, max_items: int = 50) -> list[Tick]:
        return self.symbols[symbol].path.ticks_since(since_ts)[-max_items:]
