"""Closed candles from the Bitunix public kline WebSocket.

What makes this more than "read a socket":

* **Candle close detection.** Pushes carry no bar open time: a push's bar is
  ``floor(ts, interval)`` and a bar is closed when a push for a later bar
  arrives (:class:`~laptop_agents.bitunix.candles.CandleAssembler`).
* **No gap, no duplicate.** After a reconnect the last push seen for the bar
  that was forming may not be final, so that bar and every bar missed while
  disconnected are fetched over REST (backfill) before the stream continues.
  Nothing at or before the last yielded bar is ever yielded again.
* **Silent stalls.** A connection that stays open but stops delivering market
  data (pongs do not count) for ``stall_timeout_sec`` is treated as a drop.
* **Bounded persistence.** Reconnects back off exponentially with full jitter;
  after ``max_reconnect_attempts`` consecutive attempts that produced no
  market data, ``candles()`` raises :class:`FatalError` so the session stops
  instead of trading blind.
* **Hostile input.** Malformed or unexpected frames are counted, logged once
  per kind, and skipped. Kline pushes that do not advance the market (repeats,
  impossible OHLCV, dated in the future or too far in the past against the
  market clock, out of order) are refused by the assembler, counted by reason
  (:attr:`BitunixWsProvider.rejected_frames`) and logged once per burst.
* **Freshness is progress.** :attr:`BitunixWsProvider.progress_monotonic` is
  what the session measures staleness from: the earlier of the last *accepted*
  push and the moment the next closed candle became overdue on the market
  clock. Any parseable frame only updates ``last_data_monotonic`` (liveness,
  reported but never a reason to call the feed fresh).
* **Market clock.** Exchange time is our wall clock. Only when the REST URL is
  a loopback address (the mock exchange, which can run its market clock faster
  than real time) is the clock read from the mock's ``/admin/state``.
* **Last price on the side.** Given a :class:`LastPrice`, the same connection
  also subscribes the public ``ticker`` channel (one subscribe frame for both
  channels, so every reconnect resubscribes both) and keeps that object's price
  current; the live broker reads it for price protection instead of a REST
  round trip. Ticker frames never count as market data for stall detection or
  ``last_data_monotonic``: those stay driven by klines only. A connection that
  ends clears the price.

:func:`fetch_closed_candles` (re-exported here) is the warm-up helper; the
provider's :meth:`BitunixWsProvider.warm_up` also primes the stream with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from laptop_agents.bitunix import (
    BarTransition,
    BitunixRestClient,
    CandleAssembler,
    Interval,
    LastPrice,
    MalformedMessage,
    RestConfig,
    WsConnect,
    WsKline,
    WsLoginAck,
    WsPong,
    WsTicker,
    WsUnhandled,
    bar_opens,
    candle_open_ms,
    fetch_closed_candles,
    interval_from_rest,
    parse_ws_message,
)
from laptop_agents.core.models import Candle
from laptop_agents.data.providers.base import FatalError, FeedStats
from laptop_agents.resilience.retry import RetryPolicy, full_jitter_delay

__all__ = ["BitunixWsConfig", "BitunixWsProvider", "fetch_closed_candles"]

log = logging.getLogger("laptop_agents.data.bitunix_ws")

_MAX_LOGGED_KINDS = 256
_REJECT_WARN_EVERY_SEC = 10.0
_MOCK_CLOCK_TIMEOUT_SEC = 1.0
_MIN_RECEIVE_TIMEOUT_SEC = 0.05
TICKER_CHANNEL = "ticker"


@dataclass(frozen=True, slots=True)
class BitunixWsConfig:
    """Settings of one kline stream. Times in seconds."""

    symbol: str = "BTCUSDT"
    interval: str = "1m"
    ws_url: str = "wss://fapi.bitunix.com/public/"
    rest_url: str = "https://fapi.bitunix.com"
    price_type: str = "market"
    """``market`` (last price) or ``mark`` (mark price) klines."""
    ping_interval_sec: float = 15.0
    stall_timeout_sec: float = 30.0
    connect_timeout_sec: float = 10.0
    close_timeout_sec: float = 2.0
    max_reconnect_attempts: int = 10
    backoff_base_sec: float = 0.5
    backoff_max_sec: float = 30.0
    backfill: bool = True
    max_backfill_bars: int = 1440
    """Beyond this many missed bars only the most recent are fetched (a day of 1m)."""
    future_tolerance_sec: float = 5.0
    """A push dated more than this after the market clock is refused (clock skew allowance; < one bar)."""
    max_frame_lag_sec: float = 30.0
    """A push whose bar ended more than this before the market clock is refused (too old)."""

    def __post_init__(self) -> None:
        interval_from_rest(self.interval)  # raises ValueError on an unknown interval
        if self.price_type not in ("market", "mark"):
            raise ValueError("price_type must be 'market' or 'mark'")
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url must be a ws:// or wss:// URL, got {self.ws_url!r}")
        for name in (
            "ping_interval_sec",
            "stall_timeout_sec",
            "connect_timeout_sec",
            "close_timeout_sec",
            "future_tolerance_sec",
            "max_frame_lag_sec",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_reconnect_attempts < 1:
            raise ValueError("max_reconnect_attempts must be >= 1")
        if self.backoff_base_sec < 0 or self.backoff_max_sec < 0:
            raise ValueError("backoff must be >= 0")
        if self.max_backfill_bars < 1:
            raise ValueError("max_backfill_bars must be >= 1")

    @property
    def kline_interval(self) -> Interval:
        return interval_from_rest(self.interval)

    @property
    def channel(self) -> str:
        """WebSocket channel, e.g. ``'1m'`` → ``'market_kline_1min'``."""
        return self.kline_interval.ws_channel(self.price_type)

    @property
    def rest_price_type(self) -> str | None:
        """REST ``type`` parameter matching ``price_type`` (None = server default)."""
        return "MARK_PRICE" if self.price_type == "mark" else None


# ---------------------------------------------------------------------------
# Provider
# ---------------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MarketClock:
    """The exchange's market time (epoch ms) as we estimate it.

    Our wall clock, unless :meth:`sync` was given a reading of an accelerated
    market clock (the mock exchange's ``time_scale``): then the reading plus the
    monotonic time since, times the scale. Frames never move it (an exchange
    cannot talk us into a different "now").
    """

    def __init__(self, wall_clock: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self._wall = wall_clock
        self._mono = monotonic
        self.scale = 1.0
        self._anchor: tuple[float, float] | None = None

    def sync(self, market_ms: float, scale: float, at_monotonic: float) -> None:
        self.scale = float(scale)
        self._anchor = (float(market_ms), at_monotonic)

    def now_ms(self) -> int:
        if self._anchor is None:
            return int(self._wall() * 1000)
        market, mono = self._anchor
        return int(market + (self._mono() - mono) * 1000.0 * self.scale)

    def market_ms(self, wall_sec: float) -> int:
        """A span of real seconds in market milliseconds."""
        return int(wall_sec * 1000.0 * self.scale)

    def monotonic_at(self, market_ms: int) -> float:
        """The monotonic time at which the market clock reads ``market_ms``."""
        now = self._mono()
        if self.scale <= 0:
            return now if market_ms <= self.now_ms() else float("inf")
        return now + (market_ms - self.now_ms()) / 1000.0 / self.scale


class _ConnectionEnded(Exception):
    """Internal: one connection is over; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BitunixWsProvider:
    """:class:`MarketDataProvider` over the Bitunix public kline WebSocket."""

    name = "bitunix_ws"

    def __init__(
        self,
        config: BitunixWsConfig | None = None,
        *,
        rest: BitunixRestClient | None = None,
        session: aiohttp.ClientSession | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rnd: Callable[[], float] = random.random,
        last_price: LastPrice | None = None,
    ) -> None:
        self.config = config or BitunixWsConfig()
        if last_price is not None and last_price.symbol != self.config.symbol.upper():
            raise ValueError(f"last_price is for {last_price.symbol}, the stream is {self.config.symbol}")
        self.last_price = last_price
        """Kept current from the ``ticker`` channel when given (subscribed only then)."""
        self._interval = self.config.kline_interval
        self._channel = self.config.channel
        self._symbol_key = self.config.symbol.upper()
        self._rest = rest
        self._owns_rest = rest is None
        self._session = session
        self._owns_session = session is None
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._rnd = rnd
        self.market_clock = MarketClock(wall_clock, monotonic)
        self._assembler = CandleAssembler(self._interval)
        self._apply_tolerances()
        self._clock_synced = False
        self._last_accepted: float | None = None
        self._stream_started: float | None = None
        self._candle_due: float | None = None
        self._reject_burst = 0
        self._reject_warned_at: float | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closed = asyncio.Event()
        self._running = False
        self._last_data: float | None = None
        self._logged_kinds: set[str] = set()
        # Counters for metrics (monotonic, never reset).
        self.connects = 0
        """WebSocket handshakes that succeeded."""
        self.reconnects = 0
        """Successful handshakes after the first one (i.e. recoveries from a drop)."""
        self.failed_attempts = 0
        """Connection attempts that ended without delivering any market data."""
        self.malformed_messages = 0
        self.unexpected_messages = 0
        self.backfilled_candles = 0
        self.missing_candles = 0
        self.backfill_failures = 0
        self.stalls = 0
        self.pongs = 0
        self.candles_emitted = 0
        self.tickers = 0
        """Ticker frames of our symbol that updated ``last_price``."""
        self.rejected_frames: dict[str, int] = self._assembler.rejected
        """Kline pushes refused by the assembler, by reason (``candles.REJECT_REASONS``); never reset."""

    def attach_last_price(self, last_price: LastPrice) -> None:
        """Also subscribe the ``ticker`` channel and keep ``last_price`` current (before the first connect)."""
        if self._running or self.connects:
            raise RuntimeError("attach_last_price() must be called before candles() connects")
        if last_price.symbol != self._symbol_key:
            raise ValueError(f"last_price is for {last_price.symbol}, the stream is {self.config.symbol}")
        self.last_price = last_price

    # -- protocol -----------------------------------------------------------------

    @property
    def last_data_monotonic(self) -> float | None:
        return self._last_data

    @property
    def progress_monotonic(self) -> float | None:
        """Where staleness is measured from: the earlier of the last accepted push and the moment
        the next closed candle became overdue on the market clock (None before any of either: the
        session then counts from its own start, or from the provider this one replaced)."""
        anchors = [] if self._candle_due is None else [self._candle_due]
        if self._last_accepted is not None:
            anchors.append(self._last_accepted)
        elif anchors and self._stream_started is not None:
            anchors.append(self._stream_started)  # warm-up candles, then silence: silence counts from the start
        return min(anchors) if anchors else None

    @property
    def rest_transport(self) -> Any:
        """The REST transport used for warm-up and backfill (its `stats` and `limiter` feed metrics), or None."""
        return None if self._rest is None else self._rest.transport

    def feed_stats(self) -> FeedStats:
        """Reconnects, refused pushes by reason, and the REST transport's errors and rate-limit waits, as one
        value (the session's read model carries it to the metrics)."""
        transport = self.rest_transport
        errors: tuple[tuple[str, int], ...] = ()
        waits = 0
        if transport is not None:
            errors = tuple((str(name), int(count)) for name, count in transport.stats.errors.items())
            waits = sum(transport.limiter.stats(group).waits for group in transport.config.rate_limits)
        return FeedStats(reconnects=self.reconnects, rejected_frames=tuple(self.rejected_frames.items()),
                         api_errors=errors, rate_limit_waits=waits)

    @property
    def stale_pushes(self) -> int:
        return self._assembler.stale_pushes

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self) -> None:
        """Stop the stream and release the socket, REST client and session."""
        self._closed.set()
        if self.last_price is not None:
            self.last_price.clear()
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                await asyncio.wait_for(ws.close(), self.config.close_timeout_sec)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
        if self._owns_rest and self._rest is not None:
            await self._rest.close()
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def warm_up(self, count: int) -> list[Candle]:
        """The last ``count`` closed candles via REST; ``candles()`` then continues
        right after them (bars in between are backfilled)."""
        await self._sync_market_clock()
        candles = await fetch_closed_candles(
            self._get_rest(),
            self.config.symbol,
            self.config.interval,
            count,
            price_type=self.config.rest_price_type,
        )
        if candles:
            self._assembler.prime(candle_open_ms(candles[-1]))
            self._note_candle(candle_open_ms(candles[-1]))
        return candles

    async def candles(self) -> AsyncIterator[Candle]:
        """Closed candles in time order until :meth:`close`; FatalError if it gives up."""
        if self._running:
            raise RuntimeError("candles() is already being consumed")
        self._running = True
        if self._stream_started is None:
            self._stream_started = self._monotonic()
        try:
            async with aclosing(self._run()) as stream:
                async for candle in stream:
                    yield candle
        finally:
            self._running = False

    # -- frame handling (pure apart from counters and logs) ------------------------

    def handle_message(self, raw: str | bytes) -> WsKline | None:
        """Parse one frame; return it if it is a push of *our* kline stream.

        Never raises: malformed and unexpected frames are counted, logged once
        per kind, and skipped. Updates ``last_data_monotonic`` on market data.
        """
        try:
            msg = parse_ws_message(raw)
        except MalformedMessage as exc:
            self.malformed_messages += 1
            self._log_once(f"malformed:{exc.kind}:{exc.field}", "skipping malformed frame: %s", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a parser bug must not kill the stream
            self.malformed_messages += 1
            self._log_once(
                f"parser-bug:{type(exc).__name__}",
                "unexpected %s while parsing a frame; skipped",
                type(exc).__name__,
                level=logging.ERROR,
            )
            return None
        if isinstance(msg, WsKline):
            if msg.channel == self._channel and msg.symbol.upper() == self._symbol_key:
                self._last_data = self._monotonic()
                return msg
            self.unexpected_messages += 1
            self._log_once(
                f"other-kline:{msg.channel}:{msg.symbol}"[:80],
                "ignoring kline push for %s %s (subscribed %s %s)",
                msg.symbol,
                msg.channel,
                self.config.symbol,
                self._channel,
            )
            return None
        if isinstance(msg, WsTicker):
            self._on_ticker(msg)
            return None
        if isinstance(msg, WsPong):
            self.pongs += 1
            return None
        if isinstance(msg, WsConnect):
            return None
        kind = msg.kind if isinstance(msg, WsUnhandled) else type(msg).__name__
        if isinstance(msg, WsLoginAck):
            kind = "login-ack"
        self.unexpected_messages += 1
        self._log_once(f"unexpected:{kind}", "ignoring unexpected frame of kind %s", kind)
        return None

    def _on_ticker(self, msg: WsTicker) -> None:
        """Update ``last_price`` from our symbol's ticker; anything else is counted and ignored.

        Deliberately does not touch ``last_data_monotonic``: stale-data detection stays on klines.
        """
        feed = self.last_price
        if feed is not None and msg.symbol.upper() == self._symbol_key and feed.update(
            msg.symbol, msg.last_price, msg.ts_ms
        ):
            self.tickers += 1
            return
        self.unexpected_messages += 1
        if feed is None:
            self._log_once("unexpected:ch:ticker", "ignoring ticker push (not subscribed)")
        else:
            self._log_once(
                f"other-ticker:{msg.symbol}"[:80],
                "ignoring ticker push for %s (subscribed %s)",
                msg.symbol,
                self.config.symbol,
            )

    def _log_once(self, kind: str, fmt: str, *args: Any, level: int = logging.WARNING) -> None:
        if kind in self._logged_kinds:
            return
        if len(self._logged_kinds) >= _MAX_LOGGED_KINDS:
            if "__overflow__" not in self._logged_kinds:
                self._logged_kinds.add("__overflow__")
                log.warning("too many distinct bad-frame kinds; further kinds are not logged")
            return
        self._logged_kinds.add(kind)
        log.log(level, fmt, *args)

    # -- freshness ---------------------------------------------------------------------

    def _apply_tolerances(self) -> None:
        clock, cfg, asm = self.market_clock, self.config, self._assembler
        step = self._interval.duration_ms if not self._interval.is_monthly else 28 * 86_400_000
        asm.future_tolerance_ms = min(clock.market_ms(cfg.future_tolerance_sec), step - 1)
        asm.max_lag_ms = clock.market_ms(cfg.max_frame_lag_sec)
        asm.lag_window_ms = min(clock.market_ms(cfg.future_tolerance_sec), step - 1)

    def _note_candle(self, open_ms: int) -> None:
        """Bars up to ``open_ms`` are in: the next one is overdue once the bar after it opens."""
        due = self._interval.next_open(self._interval.next_open(open_ms))
        self._candle_due = self.market_clock.monotonic_at(due)

    def on_push(self, push: WsKline) -> BarTransition | None:
        """Run one push of our stream through the assembler on the market clock; track progress."""
        market_now = self.market_clock.now_ms()
        if self._candle_due is None:
            # No candle yet (warm-up failed or was skipped): the bar forming now is due when it ends, so
            # pushes that never close a bar (prices frozen, volume growing) cannot keep the feed fresh.
            self._candle_due = self.market_clock.monotonic_at(self._interval.next_open(self._interval.floor(market_now)))
        transition = self._assembler.on_push(push, market_now)
        reason = self._assembler.last_rejection
        now = self._monotonic()
        if reason is None:
            self._last_accepted = now
            if self._reject_burst:
                log.info("bitunix ws: valid kline pushes again after %d refused", self._reject_burst)
                self._reject_burst = 0
            return transition
        self._reject_burst += 1
        if self._reject_warned_at is None or now - self._reject_warned_at >= _REJECT_WARN_EVERY_SEC:
            self._reject_warned_at = now
            log.warning(
                "bitunix ws: refusing kline pushes that do not advance the market (latest: %s; %d in this "
                "burst; totals %s); they never count as fresh data",
                reason,
                self._reject_burst,
                {k: v for k, v in self.rejected_frames.items() if v},
            )
        return None

    async def _sync_market_clock(self) -> None:
        """Against the mock exchange (loopback only) read its possibly accelerated market clock.

        Read again on every connect (a paused and resumed mock clock lags behind our estimate)."""
        if not _is_loopback(self.config.rest_url):
            return
        url = self.config.rest_url.rstrip("/") + "/admin/state"
        best: tuple[float, float, float, float] | None = None  # (rtt, market ms, scale, mono at midpoint)
        for _ in range(3):
            sent = self._monotonic()
            try:
                async with self._get_session().get(
                    url, timeout=aiohttp.ClientTimeout(total=_MOCK_CLOCK_TIMEOUT_SEC)
                ) as resp:
                    if resp.status != 200:
                        return
                    body = await resp.json(content_type=None)
                got = self._monotonic()
                data = body.get("data", body) if isinstance(body, dict) else None
                if not isinstance(data, dict):
                    return
                market, scale = float(data["marketTime"]), float(data["timeScale"])
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError, TypeError):
                return
            if best is None or got - sent < best[0]:
                best = (got - sent, market, scale, (sent + got) / 2)
        if best is None:
            return
        _, market, scale, mid = best
        self.market_clock.sync(market, scale, mid)
        self._apply_tolerances()
        self._clock_synced = True
        if not self._clock_synced:
            log.info("market clock: mock exchange at %sx real time", scale)

    # -- connection loop -------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[Candle, None]:
        failed_attempts = 0
        last_reason = "no attempt"
        while not self.closed:
            if failed_attempts or self.connects:
                delay = full_jitter_delay(
                    max(failed_attempts, 1),
                    self.config.backoff_base_sec,
                    self.config.backoff_max_sec,
                    self._rnd,
                )
                if await self._wait_closed(delay):
                    return
            got_data = False
            try:
                ws = await self._connect()
            except _ConnectionEnded as ended:
                last_reason = ended.reason
            else:
                counted_reconnect = self.connects > 0
                self.connects += 1
                if counted_reconnect:
                    self.reconnects += 1
                data_before = self._last_data
                try:
                    async with aclosing(self._stream(ws)) as stream:
                        async for candle in stream:
                            yield candle
                    last_reason = "connection closed"
                except _ConnectionEnded as ended:
                    last_reason = ended.reason
                finally:
                    got_data = self._last_data is not None and self._last_data != data_before
                    await self._drop(ws)
            if self.closed:
                return
            if got_data:
                failed_attempts = 0
                log.warning("bitunix ws connection lost (%s); reconnecting", last_reason)
            else:
                failed_attempts += 1
                self.failed_attempts += 1
                log.warning(
                    "bitunix ws attempt %d/%d failed: %s",
                    failed_attempts,
                    self.config.max_reconnect_attempts,
                    last_reason,
                )
                if failed_attempts >= self.config.max_reconnect_attempts:
                    raise FatalError(
                        f"bitunix ws gave up after {failed_attempts} consecutive failed "
                        f"attempts; last: {last_reason}"
                    )

    async def _wait_closed(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless closed first; True if closed."""
        if delay <= 0:
            return self.closed
        try:
            await asyncio.wait_for(self._closed.wait(), delay)
        except TimeoutError:
            return False
        return True

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise FatalError("the injected aiohttp session is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    def _get_rest(self) -> BitunixRestClient:
        if self._rest is None:
            self._rest = BitunixRestClient(
                RestConfig(
                    base_url=self.config.rest_url,
                    timeout_sec=max(self.config.connect_timeout_sec, 1.0),
                    retry=RetryPolicy(max_attempts=3, base_delay_sec=0.2, max_delay_sec=2.0),
                )
            )
        return self._rest

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        await self._sync_market_clock()
        try:
            ws = await asyncio.wait_for(
                self._get_session().ws_connect(
                    self.config.ws_url,
                    autoping=True,
                    heartbeat=None,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.config.close_timeout_sec),
                ),
                self.config.connect_timeout_sec,
            )
        except TimeoutError:
            raise _ConnectionEnded("connect timed out") from None
        except (aiohttp.ClientError, OSError, RuntimeError, ValueError) as exc:
            # RuntimeError: session closed by a concurrent close(); ValueError:
            # a bad URL (permanent, so it exhausts the attempts and turns fatal).
            raise _ConnectionEnded(f"connect failed: {type(exc).__name__}: {exc}") from None
        self._ws = ws
        try:
            await ws.send_str(self._subscribe_frame())
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            await self._drop(ws)
            raise _ConnectionEnded(f"subscribe failed: {type(exc).__name__}") from None
        self._assembler.on_reconnect()
        return ws

    async def _drop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if not ws.closed:
            try:
                await asyncio.wait_for(ws.close(), self.config.close_timeout_sec)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
        if self._ws is ws:
            self._ws = None
        if self.last_price is not None:
            self.last_price.clear()  # a price from a connection that is gone is not trusted

    def _subscribe_frame(self) -> str:
        """Every channel in one frame: a reconnect resubscribes all of them, never just some."""
        args = [{"symbol": self.config.symbol, "ch": self._channel}]
        if self.last_price is not None:
            args.append({"symbol": self.config.symbol, "ch": TICKER_CHANNEL})
        return json.dumps({"op": "subscribe", "args": args}, separators=(",", ":"))

    def _ping_frame(self) -> str:
        return json.dumps({"op": "ping", "ping": int(self._wall_clock())}, separators=(",", ":"))

    async def _stream(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncGenerator[Candle, None]:
        """Read one connection until it drops, stalls, or the provider closes."""
        cfg = self.config
        now = self._monotonic()
        next_ping = now + cfg.ping_interval_sec
        data_deadline = now + cfg.stall_timeout_sec
        while not self.closed:
            now = self._monotonic()
            if now >= next_ping:
                try:
                    await ws.send_str(self._ping_frame())
                except (aiohttp.ClientError, OSError, ConnectionError) as exc:
                    raise _ConnectionEnded(f"ping failed: {type(exc).__name__}") from None
                next_ping = now + cfg.ping_interval_sec
            timeout = max(min(next_ping, data_deadline) - now, _MIN_RECEIVE_TIMEOUT_SEC)
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                # Only an *empty* socket past the deadline is a stall: a slow
                # consumer leaves frames buffered and never gets here.
                if self._monotonic() >= data_deadline:
                    self.stalls += 1
                    log.warning(
                        "bitunix ws stalled: no market data for %.1fs; reconnecting",
                        cfg.stall_timeout_sec,
                    )
                    raise _ConnectionEnded("stalled") from None
                continue
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                push = self.handle_message(msg.data)
                if push is None:
                    continue
                transition = self.on_push(push)
                if self._assembler.last_rejection is None:
                    data_deadline = self._monotonic() + cfg.stall_timeout_sec
                if transition is not None:
                    for candle in await self._complete(transition):
                        yield candle
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                return
            elif msg.type is aiohttp.WSMsgType.ERROR:
                raise _ConnectionEnded(f"websocket error: {type(msg.data).__name__}")

    # -- closing bars and backfill --------------------------------------------------

    async def _complete(self, transition: BarTransition) -> list[Candle]:
        """Candles to yield for a transition: REST backfill merged with the live bar."""
        closed = transition.closed
        owed = bar_opens(self._interval, transition.fill_from, transition.until)
        limit = self.config.max_backfill_bars
        if len(owed) > limit + (1 if closed is not None else 0):
            keep = limit + (1 if closed is not None else 0)
            skipped = owed[:-keep]
            owed = owed[-keep:]
            self.missing_candles += len(skipped)
            log.error("bitunix ws: %d bars too old to backfill; gap in the stream", len(skipped))
            self._assembler.mark_emitted(skipped[-1])
        have: dict[int, Candle] = {}
        if closed is not None:
            have[candle_open_ms(closed)] = closed
        missing = [t for t in owed if t not in have]
        from_rest: set[int] = set()
        if missing and self.config.backfill:
            fetched = await self._backfill(missing[0], missing[-1] + 1)
            for open_ms in missing:
                if open_ms in fetched:
                    have[open_ms] = fetched[open_ms]
                    from_rest.add(open_ms)
        last = self._assembler.last_emitted_open
        emit = [t for t in sorted(have) if last is None or t > last]
        if not emit:
            return []
        newest = emit[-1]
        lost = sum(1 for t in owed if t <= newest and t not in have)
        if lost:
            self.missing_candles += lost
            log.error("bitunix ws: %d candle(s) could not be recovered; gap in the stream", lost)
        self._assembler.mark_emitted(newest)
        self._note_candle(newest)
        self.backfilled_candles += sum(1 for t in emit if t in from_rest)
        self.candles_emitted += len(emit)
        return [have[t] for t in emit]

    async def _backfill(self, start_ms: int, end_ms: int) -> dict[int, Candle]:
        try:
            klines = await self._get_rest().kline_range(
                self.config.symbol,
                self.config.interval,
                start_ms,
                end_ms,
                price_type=self.config.rest_price_type,
            )
        except Exception as exc:  # noqa: BLE001 - any failure: stream continues, gap counted
            self.backfill_failures += 1
            if not self.closed:
                log.error("bitunix ws backfill failed: %s: %s", type(exc).__name__, exc)
            return {}
        return {k.open_ms: k.to_candle(self.config.symbol) for k in klines}
