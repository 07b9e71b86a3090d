"""Supervisor: Signal → Decision → Order → Monitor → Exit, for one symbol.

Pure decision logic. Each closed candle goes in with a snapshot of the account;
out comes a `Decision`: the events that explain it, at most one order intent,
and at most one instruction to close. The broker (paper or live) executes; the
session loop wires the two and publishes the events. Nothing here reads a
clock, a file or the environment: the caller passes `now` and the kill switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from laptop_agents.agents.strategy import EmaTrendBreakout, Signal
from laptop_agents.core.config_models import PaperSettings, RiskConfig, StrategyConfig
from laptop_agents.core.events import Event, EventName, new_event
from laptop_agents.core.models import ZERO, AccountSnapshot, Candle, OrderIntent, Side, Trade
from laptop_agents.core.sizing import size_position
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker

EXIT_TIME = "time_exit"
SESSION_ENDING = "session_ending"


@dataclass(frozen=True, slots=True)
class EntryWindow:
    """What is left of a session with a deadline, as the shell measured it.

    An entry is only worth its fees if the position lives to see at least one
    later candle (the first chance for its stop or target); one decided less
    than a candle interval before the deadline would be opened and closed at
    `session_end` for nothing, so the supervisor refuses it (RiskRejected
    `session_ending`).
    """

    session_left_sec: float
    next_candle_in_sec: float

    @property
    def allows_entry(self) -> bool:
        return self.session_left_sec > self.next_candle_in_sec


@dataclass(slots=True)
class Decision:
    events: list[Event] = field(default_factory=list)
    intent: OrderIntent | None = None
    close_reason: str | None = None
    stop_reason: str | None = None


class Supervisor:
    """Owns the strategy, the risk gate and the breaker; decides, never executes."""

    def __init__(
        self,
        strategy_config: StrategyConfig,
        risk_config: RiskConfig,
        market: PaperSettings,
        breaker: TradingCircuitBreaker,
    ) -> None:
        self.strategy_config = strategy_config
        self.risk = risk_config
        self.limits = risk_config.hard_limits()
        self.market = market
        self.breaker = breaker
        self.strategy = EmaTrendBreakout(strategy_config)
        self._bars_since_exit = strategy_config.cooldown_candles  # no cooldown at start
        self._today: date | None = None

    # ------------------------------------------------------------------ lifecycle hooks
    def on_trade_closed(self, trade: Trade, equity_after: Decimal, now: datetime) -> Decision:
        """Monitor → Exit: feed the breaker; may ask the session to stop."""
        self._bars_since_exit = 0
        events = self.breaker.record_trade(trade, equity_after, now)
        return Decision(events=events, stop_reason=self._stop_reason_for(events))

    def _stop_reason_for(self, events: list[Event]) -> str | None:
        tripped = any(e.name == EventName.CIRCUIT_BREAKER_TRIPPED for e in events)
        if tripped and self.risk.circuit_breaker.action == "stop_session":
            return "circuit_breaker"
        return None

    # ------------------------------------------------------------------ per candle
    def on_candle(
        self, candle: Candle, account: AccountSnapshot, now: datetime, kill_switch: bool = False,
        window: EntryWindow | None = None,
    ) -> Decision:
        """``window``: how long the session has left and when the next candle is due (the shell measures both);
        None when the session has no deadline."""
        decision = Decision()
        today = now.date()
        if today != self._today:  # string formatting only when the UTC day changes
            self._today = today
            decision.events += self.breaker.roll_day(today.isoformat(), now)
        position = account.position
        # drawdown counts unrealized loss: the breaker follows mark-to-market equity on every candle
        marked = account.equity + (position.unrealized_pnl(candle.close) if position is not None else ZERO)
        tripped = self.breaker.observe_equity(marked, now)
        if tripped:
            decision.events += tripped
            decision.stop_reason = self._stop_reason_for(tripped)
        signal = self.strategy.update(candle)
        self._bars_since_exit += 1
        if position is not None:
            max_hold = self.strategy_config.exits.max_hold_candles
            if max_hold and position.bars_held >= max_hold:
                decision.close_reason = EXIT_TIME
            return decision
        if signal is None:
            return decision
        decision.events.append(new_event(EventName.SIGNAL_GENERATED, now, {
            "signal": signal.side.value, "symbol": candle.symbol, "price": candle.close, "atr": round(signal.atr, 4),
            "reason": signal.reason, "candle_ts": candle.ts,
        }))
        rejection = self._gate(kill_switch)
        if rejection:
            decision.events.append(self._rejected(now, signal, *rejection))
            return decision
        if window is not None and not window.allows_entry:
            decision.events.append(self._rejected(
                now, signal, SESSION_ENDING, SESSION_ENDING, session_left_sec=round(window.session_left_sec, 3),
                next_candle_in_sec=window.next_candle_in_sec,
            ))
            return decision
        intent, why = self._intent(signal, candle, account)
        if intent is None:
            reason, code = why or ("sizing", "sizing")
            decision.events.append(self._rejected(now, signal, reason, code))
            return decision
        decision.intent = intent
        return decision

    def _gate(self, kill_switch: bool) -> tuple[str, str] | None:
        """(reason, code) of a refusal by the guards, or None."""
        if kill_switch:
            return "kill_switch_active", "kill_switch_active"
        if not self.breaker.allows_entries:
            return f"circuit_breaker_tripped:{self.breaker.state.reason}", "circuit_breaker_tripped"
        if self._bars_since_exit <= self.strategy_config.cooldown_candles:
            return "cooldown", "cooldown"
        return None

    def _rejected(self, now: datetime, signal: Signal, reason: str, code: str, **detail: float) -> Event:
        """RiskRejected: ``reason`` is for people (may carry numbers); ``code`` is one of a bounded vocabulary
        (metrics label it, nothing parses ``reason``)."""
        return new_event(EventName.RISK_REJECTED, now,
                         {"signal": signal.side.value, "reason": reason, "code": code, **detail})

    def _intent(self, signal: Signal, candle: Candle,
                account: AccountSnapshot) -> tuple[OrderIntent | None, tuple[str, str] | None]:
        entry = candle.close
        tick = self.market.tick_size
        stop_distance = Decimal(repr(signal.atr)) * self.strategy_config.exits.stop_atr_mult
        target_distance = stop_distance * self.strategy_config.exits.take_profit_r
        if signal.side is Side.LONG:
            stop = _round(entry - stop_distance, tick, ROUND_FLOOR)
            target = _round(entry + target_distance, tick, ROUND_FLOOR)
        else:
            stop = _round(entry + stop_distance, tick, ROUND_CEILING)
            target = _round(entry - target_distance, tick, ROUND_CEILING)
        if stop <= 0 or target <= 0 or stop == entry or target == entry:
            return None, ("degenerate_stop_or_target", "stop_distance")
        sizing = size_position(
            equity=account.equity, entry_price=entry, stop_price=stop, risk_per_trade_pct=self.risk.risk_per_trade_pct,
            limits=self.limits, daily_realized_pnl=self.breaker.state.daily_realized_pnl,
            taker_fee_bps=self.market.taker_fee_bps, slippage_bps=self.market.slippage_bps,
            lot_size=self.market.lot_size, min_qty=self.market.min_qty,
        )
        if not sizing.ok:
            return None, (sizing.rejected_reason or "sizing", sizing.rejected_code or "sizing")
        return OrderIntent(signal.side, sizing.qty, stop, target, entry, reason=signal.reason), None


def _round(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step
