"""What a person watching `la run` in a terminal sees while the session trades.

One line per order, fill and exit, as they happen; a status line every
`interval_sec` (uptime, time left, candles, last close, equity, position,
trades); warnings stay visible (they are logged at WARNING by their owners).
Lines go through the `laptop_agents.console` logger, so `--quiet` hides them
(warnings and errors only) and `--verbose` adds signals and routine risk
rejections. An observer on the event bus plus a session hook: it never
touches trading state and a failure in it never stops trading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from laptop_agents.core.events import Event, EventName
from laptop_agents.session.async_session import SessionHooks
from laptop_agents.session.read_model import SessionSnapshot

log = logging.getLogger("laptop_agents.console")

DEFAULT_STATUS_INTERVAL_SEC = 30.0


def _num(value: Any) -> str:
    """Decimals and floats as their plain text (no exponent, no float noise)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return str(value)


def _signed(value: Any) -> str:
    text = _num(value)
    return text if text.startswith("-") else f"+{text}"


def _span(sec: float) -> str:
    sec = max(0, int(sec))
    h, rest = divmod(sec, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ConsoleReporter(SessionHooks):
    """Bus subscriber (order/fill/exit lines) and session hook (the periodic status line)."""

    def __init__(self, interval_sec: float = DEFAULT_STATUS_INTERVAL_SEC,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval_sec = interval_sec
        self._mono = monotonic
        self._next_status: float | None = None
        self.trades = 0

    # ------------------------------------------------------------------ events
    def __call__(self, event: Event) -> None:
        d = event.data
        name = event.name
        if name == EventName.ORDER_SUBMITTED:
            log.info("ORDER %s %s %s %s (ref %s, stop %s, target %s) %s", d.get("side"), _num(d.get("qty")),
                     d.get("symbol"), d.get("order_type", "MARKET"), _num(d.get("reference_price")),
                     _num(d.get("stop_loss")), _num(d.get("take_profit")), d.get("order_id", ""))
        elif name == EventName.EXECUTION_FILL:
            log.info("FILL  %s %s @ %s, fee %s; position %s %s open", d.get("side"), _num(d.get("qty")),
                     _num(d.get("price")), _num(d.get("fee")), _side(d.get("position_side")), d.get("position_id", ""))
        elif name == EventName.EXECUTION_EXIT:
            self.trades += 1
            log.info("EXIT  %s %s %s: %s -> %s, pnl %s USDT (fees %s), equity %s", d.get("reason"),
                     _side(d.get("position_side")), _num(d.get("qty")), _num(d.get("entry_price")),
                     _num(d.get("exit_price")), _signed(d.get("pnl")), _num(d.get("fees")), _num(d.get("equity")))
        elif name == EventName.SIGNAL_GENERATED:
            log.debug("signal %s at %s (%s)", d.get("signal"), _num(d.get("price")), d.get("reason"))
        elif name == EventName.RISK_REJECTED:
            level = logging.INFO if d.get("reason") == "session_ending" else logging.DEBUG
            extra = (f": {d.get('session_left_sec')} s left, next candle in {d.get('next_candle_in_sec')} s"
                     if d.get("reason") == "session_ending" else "")
            log.log(level, "no entry: %s signal refused (%s%s)", d.get("signal"), d.get("reason"), extra)

    # ------------------------------------------------------------------ status line
    def on_started(self, runner: Any) -> None:
        self._next_status = self._mono() + self.interval_sec

    def on_heartbeat(self, runner: Any) -> None:
        if self.interval_sec <= 0 or self._next_status is None or self._mono() < self._next_status:
            return
        self._next_status = self._mono() + self.interval_sec
        if runner.read_model is not None:
            log.info("%s", self.status_line(runner.read_model))

    def status_line(self, snap: SessionSnapshot) -> str:
        """Rendered from the session's read model (session/read_model.py), like every other status view."""
        uptime = snap.uptime(snap.taken_mono)
        duration = snap.duration_min
        left = "" if duration is None else f" of {_span(duration * 60)} ({_span(duration * 60 - uptime)} left)"
        last = snap.last_candle
        pos = snap.position
        if pos is None:
            pos_text = "flat"
        else:
            pos_text = (f"{pos.side} {_num(pos.qty)} @ {_num(pos.entry_price)}"
                        f" (mark-to-market equity {_num(snap.mark_to_market_equity)})")
        breaker = snap.breaker
        return (f"status: up {_span(uptime)}{left}; {snap.candles_processed} candles"
                f"{'' if last is None else f', last close {_num(last.close)}'}; equity {_num(snap.equity)} USDT; "
                f"position {pos_text}; {self.trades} trades"
                f"{'; BREAKER TRIPPED: ' + str(breaker.reason) if breaker.tripped else ''}")


def _side(value: Any) -> str:
    return str(getattr(value, "value", value))
