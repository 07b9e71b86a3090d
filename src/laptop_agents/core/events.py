"""The one vocabulary of domain events, and the bus that carries them.

The trading logic returns events; the shell publishes them on the bus, where
observers (journal → events.jsonl, state store, later metrics and alerts) hang.
The logic never knows who listens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from math import isnan
from typing import Any

from laptop_agents.core.models import utc_iso

log = logging.getLogger("laptop_agents.events")


class EventName:
    """Event names as they appear in events.jsonl (the seed's names)."""

    SESSION_START = "SessionStart"
    WARMUP_COMPLETED = "WarmupCompleted"
    CANDLE_PROCESSED = "CandleProcessed"
    SIGNAL_GENERATED = "SignalGenerated"
    RISK_REJECTED = "RiskRejected"
    ORDER_SUBMITTED = "OrderSubmitted"
    ORDER_REJECTED = "OrderRejected"
    EXECUTION_FILL = "ExecutionFill"
    EXECUTION_EXIT = "ExecutionExit"
    CIRCUIT_BREAKER_TRIPPED = "CircuitBreakerTripped"
    CIRCUIT_BREAKER_RESET = "CircuitBreakerReset"
    KILL_SWITCH_ACTIVATED = "KillSwitchActivated"
    STALE_DATA_DETECTED = "StaleDataDetected"
    WATCHDOG_TRIGGERED = "WatchdogTriggered"
    STATE_RESTORED = "StateRestored"
    LOCK_RECOVERED = "LockRecovered"
    SHUTDOWN_REQUESTED = "ShutdownRequested"
    # service mode (`la serve`): halted in place / resumed; the market data source down / back
    SERVICE_HALTED = "ServiceHalted"
    SERVICE_RESUMED = "ServiceResumed"
    DATA_SOURCE_DOWN = "DataSourceDown"
    DATA_SOURCE_RESTORED = "DataSourceRestored"
    SESSION_END = "SessionEnd"


class Event:
    """One domain event: a name, when it happened, and flat fields."""

    __slots__ = ("data", "name", "timestamp")

    def __init__(self, name: str, timestamp: datetime, **data: Any) -> None:
        self.name = name
        self.timestamp = timestamp
        self.data = data

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready record: `event` and `timestamp` first, Decimals as numbers."""
        record: dict[str, Any] = {"event": self.name, "timestamp": utc_iso(self.timestamp)}
        for key, value in self.data.items():
            record[key] = _jsonable(value)
        return record

    def __repr__(self) -> str:
        return f"Event({self.name}, {utc_iso(self.timestamp)}, {self.data})"


_new_object = object.__new__


def new_event(name: str, timestamp: datetime, data: dict[str, Any]) -> Event:
    """Event(name, timestamp, **data) around an existing dict (taken, not copied): for the per-candle
    hot path, where passing keywords costs more than the rest of building the event."""
    event = _new_object(Event)
    event.name = name
    event.timestamp = timestamp
    event.data = data
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        # float repr of a Decimal with <= 15 significant digits prints the same digits
        return float(value)
    if isinstance(value, datetime):
        return utc_iso(value)
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


# ----------------------------------------------------------------------------- JSON lines
_INF = float("inf")
_encode_str = json.encoder.encode_basestring  # what json uses with ensure_ascii=False (C version)
_float_repr = float.__repr__
_int_repr = int.__repr__


def _json_float(f: float) -> str:
    """Exactly json.dumps' float text (allow_nan=True)."""
    if isnan(f):
        return "NaN"
    if f == _INF:
        return "Infinity"
    if f == -_INF:
        return "-Infinity"
    return _float_repr(f)


def _decimal_json(d: Decimal) -> str:
    """json.dumps(float(d)) for a Decimal, skipping float() and float repr when str(d) is already that text.

    str(d) equals repr(float(d)) when it is plain positional notation ("95018.6", "0.0179", "-3.0"):
    it has a ".", no exponent, at most 15 digits (so the nearest double reads back as exactly these
    digits, and no shorter digit string names the same double), no trailing fractional zero other than
    a lone ".0", and magnitude >= 0.01 (float repr switches to exponent form below 1e-4).
    Anything else (integers, "1E+3", "95094.50", NaN, ...) takes the float path.
    """
    s = str(d)
    if len(s) <= 16 and "." in s and "E" not in s and (s[-1] != "0" or s[-2] == ".") and (
        s[0] in "123456789" or not s.startswith(("0.00", "-0.00"))
    ):
        return s
    return _json_float(float(d))


_CANDLE_KEYS = ("symbol", "candle_ts", "open", "high", "low", "close", "volume")


class EventEncoder:
    """Event → one JSON line, byte-identical to `json.dumps(event.to_record(), ensure_ascii=False,
    separators=(",", ":"))`, without building the record dict or going through JSONEncoder.

    The common value types (Decimal, str, datetime, float, int, bool, None) are written
    directly; anything else goes through `_jsonable` and the standard encoder, as before.
    Consecutive events of one candle share timestamps, so the last few ISO strings are kept.
    Stateless apart from those caches: pure, no I/O.
    """

    __slots__ = ("_dumps", "_keys", "_names", "_older", "_recent")

    def __init__(self) -> None:
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self._keys: dict[str, str] = {}
        self._names: dict[str, str] = {}
        # (datetime, text) pairs, each replaced whole: a thread switch can lose an entry, never mismatch one
        self._recent: tuple[datetime | None, str] = (None, "")
        self._older: tuple[datetime | None, str] = (None, "")

    def iso(self, ts: datetime) -> str:
        """utc_iso(ts), remembering the last two distinct timestamps."""
        recent = self._recent
        if ts is recent[0] or ts == recent[0]:
            return recent[1]
        older = self._older
        if ts is older[0] or ts == older[0]:
            return older[1]
        text = utc_iso(ts)
        self._older = recent
        self._recent = (ts, text)
        return text

    def line(self, event: Event) -> str:
        """The event as one JSON object followed by a newline."""
        data = event.data
        if event.name == EventName.CANDLE_PROCESSED and tuple(data) == _CANDLE_KEYS:
            # the pipeline's per-candle event, one f-string when every value has the usual type
            symbol, cts, o, h, lo, c, v = data.values()
            if (type(symbol) is str and type(cts) is datetime and type(o) is Decimal and type(h) is Decimal
                    and type(lo) is Decimal and type(c) is Decimal and type(v) is Decimal):
                dj = _decimal_json
                return (f'{{"event":"CandleProcessed","timestamp":"{self.iso(event.timestamp)}","symbol":'
                        f'{_encode_str(symbol)},"candle_ts":"{self.iso(cts)}","open":{dj(o)},"high":{dj(h)},'
                        f'"low":{dj(lo)},"close":{dj(c)},"volume":{dj(v)}}}\n')
        if "event" in data:  # would overwrite the first key: keep the general path for exactness
            return self._dumps(event.to_record()) + "\n"
        out = self._names.get(event.name)
        if out is None:
            out = self._names[event.name] = '{"event":' + _encode_str(event.name) + ',"timestamp":"'
        out += self.iso(event.timestamp) + '"'
        keys = self._keys
        for key, value in data.items():
            k = keys.get(key)
            if k is None:
                k = keys[key] = "," + _encode_str(key) + ":"
            t = type(value)
            if t is Decimal:
                v = _decimal_json(value)
            elif t is str:
                v = _encode_str(value)
            elif t is datetime:
                v = '"' + self.iso(value) + '"'
            elif t is float:
                v = _json_float(value)
            elif t is int:
                v = _int_repr(value)
            elif value is None:
                v = "null"
            elif value is True:
                v = "true"
            elif value is False:
                v = "false"
            else:
                v = self._dumps(_jsonable(value))
            out += k + v
        return out + "}\n"


Handler = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out. A failing observer is logged and counted, never fatal to trading."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self.handler_errors = 0

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("event observer %r failed on %s", handler, event.name)

    def publish_all(self, events: list[Event]) -> None:
        for event in events:
            self.publish(event)
