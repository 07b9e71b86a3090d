"""Fault injection: what can go wrong, and seeded decisions about when it does.

:class:`FaultSettings` is the whole fault state as one validated, JSON-friendly model: it is what
``GET /admin/faults`` returns, what ``POST /admin/faults`` patches, and what ``--fault-*`` / ``--faults`` set
at start-up. :class:`FaultInjector` turns those settings into per-request and per-push decisions.

Determinism: every probabilistic decision draws from its own ``random.Random`` derived from the seed, one
stream per concern (REST, rate limit, WS pushes, garbage), so the order of REST calls cannot change which
WebSocket pushes are dropped and a sequential client sees the same faults on every run with the same seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import errors


class FaultSettings(BaseModel):
    """Every injectable fault. All default to "off"; shares are probabilities in [0, 1].

    WebSocket faults
      * ``ws_drop_every_s``: drop every WebSocket connection every N real seconds (0 = never). To drop once,
        right now, send ``{"ws_drop_now": true}`` to ``POST /admin/faults`` (an action, not a setting).
      * ``ws_drop_mode``: ``abort`` closes the TCP connection without a close frame (a network drop, what a
        client sees most often); ``close`` sends a close frame with code 1012 (service restart).
      * ``ws_stall``: connections stay open but the server sends nothing at all: no pushes, no pong, no
        login ack (a silently hung feed; clients must detect it by staleness, not by disconnect).
      * ``ws_push_drop_share``: share of market/private pushes silently not sent.
      * ``ws_push_delay_ms`` / ``ws_push_delay_share``: delay that share of pushes by that many ms. Pushes on a
        connection stay in order, so a delayed push also holds back the ones behind it (like network lag).
      * ``ws_malformed_share``: share of pushes preceded by one garbage or unexpected message (invalid JSON,
        truncated JSON, a binary frame, an unknown ``op``, a push with wrong types, an unknown channel...).
        The genuine push still follows, so a robust client loses no data.

    REST faults (apply to ``/api/...`` only, never to ``/admin``)
      * ``rest_error_share`` / ``rest_error_next``: answer that share of calls, or the next N calls, with HTTP
        ``rest_error_status`` (default 503) and a non-envelope body.
      * ``rest_hang_share`` / ``rest_hang_next``: hold that share, or the next N calls, for ``rest_hang_s``
        seconds without answering (the client should time out first), then answer HTTP 504.
      * ``rest_fault_paths``: restrict REST faults to paths ending with one of these suffixes (e.g.
        ``"trade/place_order"``); empty means every API path.
      * ``rest_fault_phase``: ``before`` means the exchange never processes the faulted request; ``after``
        means it *does* process it (an order gets placed) and only the response is lost, the case that makes
        a client retry with the same ``clientId`` and meet 30042.
      * ``rate_limit_all`` / ``rate_limit_next``: refuse every call, or the next N calls, with the rate-limit
        code regardless of the real request rate.
      * ``reject_orders_next`` / ``reject_orders_code`` / ``reject_orders_msg``: refuse the next N authenticated
        ``place_order`` calls with that code (default 20003) after authentication and before validation.
      * ``rest_hold_next`` / ``rest_hold_skip`` / ``rest_hold_paths`` / ``rest_hold_phase`` / ``rest_hold_s``:
        park the next N calls whose path ends with one of ``rest_hold_paths`` (empty = every API path), after
        letting ``rest_hold_skip`` matching calls through (so "the 3rd place_order" is skip 2, next 1), until
        the test releases them (``POST /admin/holds/release``) or ``rest_hold_s`` passes (then HTTP 504).
        Phase ``after`` processes the call first and parks only the answer. See :mod:`.holds`.
      * ``tpsl_modify_ignored_next``: answer the next N TP/SL modifies (``tpsl/modify_order``,
        ``tpsl/position/modify_order``) with success and the order id, and change nothing: the docs warn that
        a successful answer is not the success of the operation (a client must read the order back).

    Clock and market
      * ``clock_skew_ms``: add this to the exchange's wall clock (client timestamps then look skewed).
      * ``price_paused``: freeze the market clock: no new ticks, no new candles, pushes repeat the same data
        (stale-data tests). Unpausing continues the path from where it stopped.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    ws_drop_every_s: float = Field(0.0, ge=0)
    ws_drop_mode: Literal["abort", "close"] = "abort"
    ws_stall: bool = False
    ws_push_drop_share: float = Field(0.0, ge=0, le=1)
    ws_push_delay_ms: int = Field(0, ge=0)
    ws_push_delay_share: float = Field(1.0, ge=0, le=1)
    ws_malformed_share: float = Field(0.0, ge=0, le=1)
    rest_error_share: float = Field(0.0, ge=0, le=1)
    rest_error_next: int = Field(0, ge=0)
    rest_error_status: int = Field(503, ge=400, le=599)
    rest_hang_share: float = Field(0.0, ge=0, le=1)
    rest_hang_next: int = Field(0, ge=0)
    rest_hang_s: float = Field(30.0, ge=0)
    rest_fault_paths: list[str] = Field(default_factory=list)
    rest_fault_phase: Literal["before", "after"] = "before"
    rate_limit_all: bool = False
    rate_limit_next: int = Field(0, ge=0)
    reject_orders_next: int = Field(0, ge=0)
    tpsl_modify_ignored_next: int = Field(0, ge=0)
    rest_hold_next: int = Field(0, ge=0)
    rest_hold_skip: int = Field(0, ge=0)
    rest_hold_paths: list[str] = Field(default_factory=list)
    rest_hold_phase: Literal["before", "after"] = "before"
    rest_hold_s: float = Field(60.0, ge=0)
    reject_orders_code: int = errors.INSUFFICIENT_BALANCE
    reject_orders_msg: str = ""
    clock_skew_ms: int = 0
    price_paused: bool = False


@dataclass(frozen=True, slots=True)
class RestFault:
    """A decision to fail one REST call: ``kind`` is ``error`` (HTTP status) or ``hang``."""

    kind: Literal["error", "hang"]
    status: int
    hang_s: float
    phase: Literal["before", "after"]


@dataclass(frozen=True, slots=True)
class RestHold:
    """A decision to park one REST call (see :mod:`.holds`)."""

    phase: Literal["before", "after"]
    hold_s: float


@dataclass(frozen=True, slots=True)
class PushFate:
    """What happens to one outgoing push: dropped, delayed, and/or preceded by garbage."""

    drop: bool = False
    delay_s: float = 0.0
    garbage: str | bytes | None = None


_SEED_SALTS = {"rest": 1, "rate": 2, "push": 3, "garbage": 4}


class FaultInjector:
    """Holds the current :class:`FaultSettings` and makes the seeded decisions."""

    def __init__(self, seed: int, settings: FaultSettings | None = None) -> None:
        self._seed = seed
        self.settings = settings or FaultSettings()
        self._rng = {name: random.Random(f"{seed}:faults:{salt}") for name, salt in _SEED_SALTS.items()}

    def update(self, patch: dict[str, Any]) -> FaultSettings:
        """Apply a partial update, validated as a whole (unknown keys or bad values raise ValueError)."""
        merged = {**self.settings.model_dump(), **patch}
        self.settings = FaultSettings.model_validate(merged)
        return self.settings

    def reset(self) -> None:
        self.settings = FaultSettings()

    # --- REST -------------------------------------------------------------------------------------------

    def _path_selected(self, path: str) -> bool:
        suffixes = self.settings.rest_fault_paths
        return not suffixes or any(path.rstrip("/").endswith(s.strip("/")) for s in suffixes)

    def rest_fault(self, path: str) -> RestFault | None:
        """Decide whether this API call fails; consumes one unit of a ``*_next`` budget when it does."""
        s = self.settings
        if not self._path_selected(path):
            return None
        rng = self._rng["rest"]
        if s.rest_hang_next > 0:
            s.rest_hang_next -= 1
            return RestFault("hang", 504, s.rest_hang_s, s.rest_fault_phase)
        if s.rest_error_next > 0:
            s.rest_error_next -= 1
            return RestFault("error", s.rest_error_status, 0.0, s.rest_fault_phase)
        if s.rest_hang_share > 0 and rng.random() < s.rest_hang_share:
            return RestFault("hang", 504, s.rest_hang_s, s.rest_fault_phase)
        if s.rest_error_share > 0 and rng.random() < s.rest_error_share:
            return RestFault("error", s.rest_error_status, 0.0, s.rest_fault_phase)
        return None

    def rest_hold(self, path: str) -> RestHold | None:
        """Whether to park this API call; consumes the skip budget first, then one unit of ``rest_hold_next``."""
        s = self.settings
        if s.rest_hold_next <= 0:
            return None
        suffixes = s.rest_hold_paths
        if suffixes and not any(path.rstrip("/").endswith(x.strip("/")) for x in suffixes):
            return None
        if s.rest_hold_skip > 0:
            s.rest_hold_skip -= 1
            return None
        s.rest_hold_next -= 1
        return RestHold(s.rest_hold_phase, s.rest_hold_s)

    def force_rate_limit(self) -> bool:
        s = self.settings
        if s.rate_limit_all:
            return True
        if s.rate_limit_next > 0:
            s.rate_limit_next -= 1
            return True
        return False

    def take_order_rejection(self) -> errors.ApiError | None:
        s = self.settings
        if s.reject_orders_next <= 0:
            return None
        s.reject_orders_next -= 1
        return errors.ApiError(s.reject_orders_code, s.reject_orders_msg or None)

    def take_tpsl_modify_ignored(self) -> bool:
        s = self.settings
        if s.tpsl_modify_ignored_next <= 0:
            return False
        s.tpsl_modify_ignored_next -= 1
        return True

    # --- WebSocket ----------------------------------------------------------------------------------------

    def push_fate(self) -> PushFate:
        """Decide the fate of one push. Draws happen in a fixed order so the stream stays reproducible."""
        s = self.settings
        rng = self._rng["push"]
        if s.ws_push_drop_share > 0 and rng.random() < s.ws_push_drop_share:
            return PushFate(drop=True)
        delay = 0.0
        if s.ws_push_delay_ms > 0 and rng.random() < s.ws_push_delay_share:
            delay = s.ws_push_delay_ms / 1000.0
        garbage = None
        if s.ws_malformed_share > 0 and rng.random() < s.ws_malformed_share:
            garbage = self._garbage()
        return PushFate(drop=False, delay_s=delay, garbage=garbage)

    def _garbage(self) -> str | bytes:
        rng = self._rng["garbage"]
        sample = json.dumps(
            {"ch": "market_kline_1min", "symbol": "BTCUSDT", "ts": 1, "data": {"o": "1", "c": "1"}},
            separators=(",", ":"),
        )
        choices: list[str | bytes] = [
            "}{ this is not json",
            sample[: len(sample) // 2],
            b"\x00\x01\x02\xff",
            '{"op":"unexpected_op","data":{"hello":"world"}}',
            "[1,2,3]",
            "null",
            "",
            '{"ch":"market_kline_1min","symbol":"BTCUSDT","ts":"not-a-number",'
            '"data":{"o":null,"c":"NaN","h":{},"l":[],"b":true,"q":"-"}}',
            '{"ch":"no_such_channel","symbol":"BTCUSDT","ts":0,"data":{}}',
            '{"ch":"market_kline_1min","symbol":"BTCUSDT"}',
            '{"op":"ping","pong":"garbage"}',
        ]
        return choices[rng.randrange(len(choices))]
