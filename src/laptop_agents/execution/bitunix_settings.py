"""What the live Bitunix broker is told (LiveBrokerSettings) and how it refuses (its errors).

Why its own module: every part of the live broker (order execution, reconciliation, the broker itself) reads
the same settings and raises the same errors, and the session classifies those errors into exit codes; one home
keeps the parts from importing each other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from laptop_agents.bitunix import MarginMode, StopType
from laptop_agents.core.errors import ExitCode, LaError


class LiveBrokerError(LaError):
    """The live broker cannot continue safely (start-up, reconciliation, ambiguous order state)."""

    exit_code = ExitCode.INTERNAL_ERROR


class ReconcileError(LiveBrokerError):
    """Local and exchange state disagree in a way we must not guess about."""

    exit_code = ExitCode.STATE_ERROR


class NotFlatError(LiveBrokerError):
    """Shutdown could not verify that the account has no position and no open order."""

    exit_code = ExitCode.NOT_FLAT


class OrderIdentityError(ReconcileError):
    """An order found under our clientId is not the one we sent: entries halt, the session stops (exit 8)."""


class OtherInstanceError(ReconcileError):
    """Orders or a position on the exchange carry another la instance's tag: two sessions on one account."""


class ClockSkewError(LiveBrokerError):
    """The local clock is further from the exchange's than its receive window: refuse to start."""

    exit_code = ExitCode.CLOCK_SKEW


@dataclass(frozen=True)
class LiveBrokerSettings:
    """How the broker trades; values the operator chooses (leverage is capped by the hard limits upstream)."""

    symbol: str = "BTCUSDT"
    leverage: int = 5
    margin_mode: MarginMode = MarginMode.ISOLATION
    margin_coin: str = "USDT"
    client_id_prefix: str = "la"
    stop_type: StopType = StopType.LAST_PRICE
    fill_poll_interval_sec: float = 0.1
    fill_timeout_sec: float = 10.0
    flat_verify_attempts: int = 5
    flat_verify_interval_sec: float = 0.2
    history_page_limit: int = 100
    stop_budget_sec: float = 10.0
    """How long exits (close, cancel, verify flat, book) keep retrying a failing exchange, with backoff."""
    stop_backoff_max_sec: float = 1.0
    blind_stop_sec: float = 30.0
    """How long the open position (or an unbooked entry) may go unchecked because every candle's check with the
    exchange fails: a blip shorter than this is retried next candle; an outage longer stops the session (exit 12,
    then the exits flatten). The session binds it to ``session.stale_data_timeout_sec``: blind to the account is
    tolerated no longer than blind to the market."""
    recv_window_ms: int = 5000
    """The exchange's timestamp tolerance (undocumented; a few seconds): a larger clock skew refuses start-up."""

    @property
    def entry_life_sec(self) -> float:
        """How long after its send an entry whose answer never came may still land on the exchange.

        The exchange refuses a request whose signed timestamp is further than its receive window from its own
        clock, and ours may lead it by up to one window (a larger skew refuses start): two windows and a second
        after the send, the request can no longer be accepted. Before that, a lookup that finds nothing proves
        nothing (the request may be held on its way in), so the entry stays unknown and nothing new is sent."""
        return 2 * self.recv_window_ms / 1000 + 1.0

    def __post_init__(self) -> None:
        if not self.client_id_prefix.isalnum() or len(self.client_id_prefix) > 8:
            raise ValueError("client_id_prefix must be 1-8 alphanumeric characters")
        if self.leverage < 1:
            raise ValueError("leverage must be >= 1")
        if not self.blind_stop_sec > 0:
            raise ValueError("blind_stop_sec must be > 0")
