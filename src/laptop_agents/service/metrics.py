"""Every Prometheus metric of the service, declared once, in one place.

Why one module: dashboards, alert rules and the runbook all refer to these
names, so they must not drift or be redeclared ad hoc. Names follow
`laptop_agents_<what>_<unit>`, counters end in `_total`, and every series
carries the two bounded labels `mode` (paper/live) and `symbol`. Other labels
are bounded vocabularies (rejection reasons, breaker reasons, error kinds,
event names), never ids.

Each `ServiceMetrics` owns its own `CollectorRegistry`, so two sessions in one
process (tests) never collide and nothing leaks into the global registry.

Sources: counters are driven by the domain events on the session's EventBus
(`MetricsObserver`), the very events that feed events.jsonl; gauges are sampled
from the runner on each loop heartbeat (`sample`). WebSocket reconnects follow
the provider's own `reconnects` count (bitunix_ws); API errors and rate-limit
waits follow the market-data REST transport's own counters (warm-up, backfill).
Every label value is exported from the start (at 0); `record_*` methods are the
API the live broker calls for its own requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laptop_agents.core.events import Event, EventName
from laptop_agents.session.read_model import FeedStats, SessionSnapshot

log = logging.getLogger("laptop_agents.service.metrics")

NAMESPACE = "laptop_agents"
BASE_LABELS = ("mode", "symbol")

BREAKER_REASONS = ("max_drawdown", "consecutive_losses", "daily_loss")
RISK_REJECT_CODES = (
    "kill_switch_active", "circuit_breaker_tripped", "cooldown", "equity", "stop_distance",
    "daily_loss_budget", "below_min_qty", "sizing", "service_halted", "session_ending",
)
"""RiskRejected's ``code`` (agents/supervisor.py, core/sizing.py, session/pipeline.py): refused before the broker."""
ORDER_REJECT_REASONS = (
    "entries_halted", "position_open", "previous_entry_unbooked", "foreign_position", "order_identity",
    "exchange_unavailable", "price_unavailable", "insufficient_balance", "invalid_request", "rejected",
    "not_placed", "not_filled", "qty_below_min", "qty_above_max", "price_protection", "tpsl_invalid",
    "bad_price", "symbol_not_tradable", "previous_order_may_land",
    "state_not_saved",
)
"""OrderRejected's ``reason`` (execution/bitunix_broker.py, execution/order_checks.py): refused by the broker or the
exchange."""
REJECT_REASONS = (*RISK_REJECT_CODES, *ORDER_REJECT_REASONS, "other")
HALT_REASONS = ("kill_switch", "circuit_breaker", "data_source_down", "stale_data")  # = session.stay_up.HALT_REASONS
API_ERROR_BY_CLASS = {
    "TransportError": "network", "ExchangeNetworkError": "network", "ExchangeUnavailableError": "unavailable",
    "AuthError": "auth", "RateLimitError": "rate_limit", "InvalidRequestError": "invalid_request",
    "InsufficientBalanceError": "insufficient_balance", "OrderRejectedError": "order_rejected",
    "OrderNotFoundError": "order_not_found", "DuplicateClientIdError": "duplicate_client_id",
    "MalformedMessage": "malformed",
}
API_ERROR_CODES = (
    "network", "unavailable", "auth", "rate_limit", "invalid_request", "insufficient_balance",
    "order_rejected", "order_not_found", "duplicate_client_id", "malformed", "other",
)
ALERT_KINDS = (
    "kill_switch", "circuit_breaker", "stale_data", "watchdog", "crash", "not_flat", "live_started",
    "credential_failure", "optin_failure", "data_source",
)
ALERT_DROP_REASONS = ("duplicate", "rate_limited", "queue_full")
EVENT_NAMES = tuple(v for k, v in vars(EventName).items() if k.isupper())
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def reject_label(event: Event) -> str:
    """The bounded ``reason`` label of a refused entry, from the event's typed code field (never its free text):
    RiskRejected's ``code``, OrderRejected's ``reason``; an unknown or missing code is ``other``."""
    known: tuple[str, ...]
    if event.name == EventName.RISK_REJECTED:
        code, known = event.data.get("code"), RISK_REJECT_CODES
    else:
        code, known = event.data.get("reason"), ORDER_REJECT_REASONS
    return code if isinstance(code, str) and code in known else "other"


def _f(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, Decimal)) else float(str(value))


class ServiceMetrics:
    """The metric objects of one session, bound to (mode, symbol)."""

    def __init__(self, mode: str, symbol: str, registry: CollectorRegistry | None = None) -> None:
        # `_created` series double every counter and no dashboard uses them (process-wide switch)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
        self.mode = mode
        self.symbol = symbol
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        L = BASE_LABELS
        n = NAMESPACE

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{n}_{name}", doc, L + extra, registry=r)

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{n}_{name}", doc, L + extra, registry=r)

        # market data
        self.candles = counter("candles_processed", "Closed candles run through the trading pipeline")
        self.data_age = gauge("market_data_age_seconds", "Seconds since the last market data arrived")
        self.last_candle_ts = gauge("last_candle_timestamp_seconds", "Open time of the last processed candle (unix)")
        self.ws_reconnects = counter("ws_reconnects", "WebSocket market-data reconnects (live feed)")
        self.frames_rejected = counter("market_data_frames_rejected",
                                       "Market data pushes refused as not advancing the market, by reason", ("reason",))
        # orders
        self.orders_submitted = counter("orders_submitted", "Orders sent to the broker")
        self.orders_filled = counter("orders_filled", "Order fills reported by the broker")
        self.orders_rejected = counter("orders_rejected", "Entries refused before or by the broker", ("reason",))
        self.order_latency = Histogram(
            f"{n}_order_roundtrip_seconds", "Order submit to fill, as seen on the event bus", L,
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.exits = counter("position_exits", "Positions closed, by exit reason", ("reason",))
        self.api_errors = counter("api_errors", "Exchange API errors by error kind", ("code",))
        self.rate_limit_waits = counter("rate_limit_waits", "Times a request waited for the client-side rate limiter")
        # account
        self.position_size = gauge("position_size_base_units", "Open position size in the base asset, signed (short < 0)")
        self.position_notional = gauge("position_notional_usdt", "Open position notional at the last price")
        self.equity = gauge("equity_usdt", "Realized account equity (cash after fees)")
        self.mtm_equity = gauge("mark_to_market_equity_usdt", "Equity including the open position's unrealized PnL")
        self.realized_pnl = gauge("realized_pnl_usdt", "Realized PnL since the account's starting equity")
        self.daily_pnl = gauge("daily_pnl_usdt", "Realized PnL of the current UTC trading day")
        self.daily_loss_limit = gauge("daily_loss_limit_usdt", "Configured maximum daily loss")
        self.drawdown = gauge("drawdown_percent", "Drawdown of realized equity from its peak, percent")
        self.drawdown_limit = gauge("drawdown_limit_percent", "Circuit breaker drawdown limit, percent")
        self.consecutive_losses = gauge("consecutive_losing_trades", "Losing trades in a row")
        self.trades = counter("trades_closed", "Round-trip trades closed")
        # safety
        self.breaker_tripped = gauge("breaker_tripped", "1 while the trading circuit breaker is tripped for this reason",
                                     ("reason",))
        self.breaker_trips = counter("breaker_trips", "Circuit breaker trips", ("reason",))
        self.kill_switch = gauge("kill_switch_active", "1 while the kill switch is active")
        self.halted = gauge("halted", "1 while `la serve` is halted in place (flat, no entries) for this reason",
                            ("reason",))
        self.ready = gauge("ready", "1 while /readyz answers 200 (trading), 0 while not ready (see /readyz)")
        self.broker_healthy = gauge("broker_healthy", "1 while the broker reports itself healthy (paper: state "
                                    "persisted; live: also exchange API circuit closed, last answer good)")
        self.data_source_up = gauge("data_source_up", "0 while the market data source is down (reconnecting)")
        self.data_reconnects = counter("data_source_reconnect_attempts",
                                       "Service mode: attempts to reconnect a market data source that gave up")
        self.heartbeat_age = gauge("loop_heartbeat_age_seconds", "Seconds since the trading loop last beat")
        self.session_start = gauge("session_start_time_seconds", "Unix time the session started")
        self.events = counter("events", "Domain events published on the session bus", ("event",))
        # alerts
        self.alerts_sent = counter("alerts_sent", "Alerts delivered to every target", ("kind",))
        self.alert_failures = counter("alert_delivery_failures", "Alert deliveries that failed", ("kind",))
        self.alerts_dropped = counter("alerts_dropped", "Alerts not sent (duplicate, rate limited, queue full)",
                                      ("reason",))
        r.register(ProcessCollector(mode, symbol))
        self._reconnects_seen = 0
        self._api_errors_seen: dict[str, int] = {}
        self._rejected_seen: dict[str, int] = {}
        self._rate_waits_seen = 0
        self._data_reconnects_seen = 0
        self._init_children()

    def _init_children(self) -> None:
        """Create every bounded label child at 0, so series exist before their first event."""
        b = (self.mode, self.symbol)
        for m in (self.candles, self.ws_reconnects, self.orders_submitted, self.orders_filled, self.rate_limit_waits,
                  self.trades, self.data_age, self.position_size, self.position_notional, self.kill_switch,
                  self.heartbeat_age, self.consecutive_losses, self.daily_pnl, self.drawdown):
            m.labels(*b)
        self.order_latency.labels(*b)
        for reason in REJECT_REASONS:
            self.orders_rejected.labels(*b, reason)
        for code in API_ERROR_CODES:
            self.api_errors.labels(*b, code)
        for reason in HALT_REASONS:
            self.halted.labels(*b, reason).set(0)
        self.ready.labels(*b).set(0)
        self.broker_healthy.labels(*b).set(0)
        self.data_source_up.labels(*b).set(1)
        self.data_reconnects.labels(*b)
        for reason in BREAKER_REASONS:
            self.breaker_tripped.labels(*b, reason).set(0)
            self.breaker_trips.labels(*b, reason)
        for reason in ("take_profit", "stop_loss", "time_exit", "kill_switch", "shutdown", "session_end"):
            self.exits.labels(*b, reason)
        for kind in ALERT_KINDS:
            self.alerts_sent.labels(*b, kind)
            self.alert_failures.labels(*b, kind)
        for reason in ALERT_DROP_REASONS:
            self.alerts_dropped.labels(*b, reason)
        for name in EVENT_NAMES:
            self.events.labels(*b, name)

    def lab(self, metric: Any, *extra: str) -> Any:
        return metric.labels(self.mode, self.symbol, *extra)

    # ------------------------------------------------------------------ API for the live path
    def record_ws_reconnect(self) -> None:
        self.lab(self.ws_reconnects).inc()

    def record_api_error(self, code: str) -> None:
        self.lab(self.api_errors, code if code in API_ERROR_CODES else "other").inc()

    def record_rate_limit_wait(self) -> None:
        self.lab(self.rate_limit_waits).inc()

    def record_alert(self, kind: str, outcome: str) -> None:
        """outcome: sent | failed | duplicate | rate_limited | queue_full (called by the alerts Notifier)."""
        kind = kind if kind in ALERT_KINDS else "crash"
        if outcome == "sent":
            self.lab(self.alerts_sent, kind).inc()
        elif outcome == "failed":
            self.lab(self.alert_failures, kind).inc()
        elif outcome in ALERT_DROP_REASONS:
            self.lab(self.alerts_dropped, outcome).inc()

    # ------------------------------------------------------------------ sampling
    def sample(self, snapshot: SessionSnapshot, now: float | None = None) -> None:
        """Refresh the gauges from the session's read model (each loop heartbeat, and at scrape time)."""
        now = time.monotonic() if now is None else now
        snap = snapshot
        b = snap.breaker
        self.lab(self.heartbeat_age).set(snap.heartbeat_age(now))
        self.lab(self.data_age).set(snap.stale_age(now))  # no data yet: as old as the session (not a flattering 0)
        self.lab(self.equity).set(_f(snap.equity))
        self.lab(self.mtm_equity).set(_f(snap.mark_to_market_equity))
        self.lab(self.realized_pnl).set(_f(snap.equity - snap.starting_equity))
        self.lab(self.daily_pnl).set(_f(b.daily_realized_pnl))
        self.lab(self.drawdown).set(_f(b.realized_drawdown_pct))
        self.lab(self.drawdown_limit).set(_f(b.max_drawdown_pct))
        self.lab(self.daily_loss_limit).set(_f(b.max_daily_loss_usd))
        self.lab(self.consecutive_losses).set(b.consecutive_losses)
        for reason in BREAKER_REASONS:
            self.lab(self.breaker_tripped, reason).set(1 if b.tripped and b.reason == reason else 0)
        pos = snap.position
        self.lab(self.position_size).set(0 if pos is None else _f(pos.signed_qty))
        self.lab(self.position_notional).set(0 if pos is None else _f(pos.gauge_notional))
        if snap.last_candle is not None:
            self.lab(self.last_candle_ts).set(snap.last_candle.ts.timestamp())
        halt = snap.halt
        if halt is not None:  # service mode: the gauges follow the live state, 1 while active, back to 0
            self.lab(self.kill_switch).set(1 if snap.kill_switch_active else 0)
            for reason in HALT_REASONS:
                self.lab(self.halted, reason).set(1 if reason in halt.active else 0)
            self.lab(self.data_source_up).set(1 if halt.data_source_up else 0)
            grew = halt.reconnect_attempts - self._data_reconnects_seen
            if grew > 0:
                self.lab(self.data_reconnects).inc(grew)
                self._data_reconnects_seen = halt.reconnect_attempts
        elif snap.kill_switch_active:
            self.lab(self.kill_switch).set(1)
        self.lab(self.ready).set(1 if snap.readiness(now)[0] else 0)
        self.lab(self.broker_healthy).set(1 if snap.broker.healthy else 0)
        self._follow_feed(snap.feed)

    def _follow_feed(self, feed: FeedStats) -> None:
        """Mirror the increase of the market data source's own counters (reconnects, refused pushes, REST errors
        by class, rate-limit waits): they never reset, so only the growth is added."""
        if feed.reconnects > self._reconnects_seen:
            self.lab(self.ws_reconnects).inc(feed.reconnects - self._reconnects_seen)
            self._reconnects_seen = feed.reconnects
        for reason, count in feed.rejected_frames:
            seen = self._rejected_seen.get(reason, 0)
            if count > seen:
                self.lab(self.frames_rejected, reason).inc(count - seen)
                self._rejected_seen[reason] = count
        for name, count in feed.api_errors:  # keyed by exception class name
            seen = self._api_errors_seen.get(name, 0)
            if count > seen:
                self.lab(self.api_errors, API_ERROR_BY_CLASS.get(name, "other")).inc(count - seen)
                self._api_errors_seen[name] = count
        if feed.rate_limit_waits > self._rate_waits_seen:
            self.lab(self.rate_limit_waits).inc(feed.rate_limit_waits - self._rate_waits_seen)
            self._rate_waits_seen = feed.rate_limit_waits

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsObserver:
    """EventBus subscriber: turns domain events into counter increments.

    Runs synchronously on the publisher's thread, so it only does O(1) work.
    Order round-trip latency pairs OrderSubmitted and ExecutionFill by order id
    using the monotonic time at which each event was observed.
    """

    _MAX_PENDING = 1000

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.m = metrics
        self._pending: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        m = self.m
        d = event.data
        name = event.name
        if name in EVENT_NAMES:
            m.lab(m.events, name).inc()
        if name == EventName.CANDLE_PROCESSED:
            m.lab(m.candles).inc()
        elif name == EventName.ORDER_SUBMITTED:
            m.lab(m.orders_submitted).inc()
            if len(self._pending) < self._MAX_PENDING:
                self._pending[str(d.get("order_id"))] = time.monotonic()
        elif name == EventName.EXECUTION_FILL:
            m.lab(m.orders_filled).inc()
            started = self._pending.pop(str(d.get("order_id")), None)
            if started is not None:
                m.lab(m.order_latency).observe(time.monotonic() - started)
        elif name in (EventName.RISK_REJECTED, EventName.ORDER_REJECTED):
            m.lab(m.orders_rejected, reject_label(event)).inc()
        elif name == EventName.EXECUTION_EXIT:
            m.lab(m.exits, str(d.get("reason", "other"))).inc()
            m.lab(m.trades).inc()
        elif name == EventName.CIRCUIT_BREAKER_TRIPPED:
            reason = str(d.get("reason"))
            if reason in BREAKER_REASONS:
                m.lab(m.breaker_trips, reason).inc()
                m.lab(m.breaker_tripped, reason).set(1)
        elif name == EventName.CIRCUIT_BREAKER_RESET:
            for reason in BREAKER_REASONS:
                m.lab(m.breaker_tripped, reason).set(0)
        elif name == EventName.KILL_SWITCH_ACTIVATED:
            m.lab(m.kill_switch).set(1)
        elif name == EventName.SESSION_START:
            m.lab(m.session_start).set(event.timestamp.timestamp())
            if "starting_equity" in d:
                m.lab(m.equity).set(_f(d["starting_equity"]))


class ProcessCollector(Collector):
    """RSS and CPU of this process, read from psutil at scrape time (cheap, always current)."""

    def __init__(self, mode: str, symbol: str) -> None:
        self._labels = [mode, symbol]
        self._proc = psutil.Process()

    def collect(self) -> Iterator[Metric]:
        try:
            rss = self._proc.memory_info().rss
            cpu = self._proc.cpu_times()
        except psutil.Error:  # pragma: no cover - the process is reading itself
            return
        g = GaugeMetricFamily(f"{NAMESPACE}_process_resident_memory_bytes", "Resident set size of the process",
                              labels=list(BASE_LABELS))
        g.add_metric(self._labels, float(rss))
        c = CounterMetricFamily(f"{NAMESPACE}_process_cpu_seconds", "User plus system CPU time of the process",
                                labels=list(BASE_LABELS))
        c.add_metric(self._labels, float(cpu.user + cpu.system))
        yield g
        yield c

    def describe(self) -> Iterable[Metric]:
        return []
