"""The runner's side of the read model: turn the session's live objects into one `SessionSnapshot`.

This is the only module that reads the runner's parts (account, breaker, pipeline, stay-up, provider, state
store) to describe them; every view renders the value it returns (session/read_model.py says why).
Runs on the loop thread each heartbeat, and on the watchdog thread once when a frozen loop is shut down.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from laptop_agents.data.providers.base import FeedStats, ReportsFeedStats
from laptop_agents.execution.health import BrokerHealth, ReportsHealth
from laptop_agents.session.read_model import (
    BreakerView,
    CandleView,
    HaltView,
    PositionView,
    SessionSnapshot,
    Thresholds,
)

if TYPE_CHECKING:
    from laptop_agents.session.async_session import AsyncRunner


def thresholds_of(runner: AsyncRunner) -> Thresholds:
    s = runner.settings
    return Thresholds.from_settings(s.heartbeat_timeout_sec, s.control_interval_sec, s.stale_data_timeout_sec)


def broker_health(runner: AsyncRunner) -> BrokerHealth:
    """The broker's own verdict (live: exchange facts, see ``BitunixBroker.health``), plus the session's: a
    broker whose last state save failed is unhealthy (paper: healthy exactly while its state persists)."""
    account = runner.account
    own = account.health() if isinstance(account, ReportsHealth) else BrokerHealth(runner.broker.name)
    error = runner.store.write_error
    return own if error is None else own.with_problem(f"state not persisted ({error})")


def feed_stats(provider: object) -> FeedStats:
    """The provider's own counters (bitunix_ws); providers that keep none (mock, replay) report zeros."""
    return provider.feed_stats() if isinstance(provider, ReportsFeedStats) else FeedStats()


def _halt_view(runner: AsyncRunner) -> HaltView | None:
    stay_up = runner.stay_up
    if stay_up is None:
        return None
    return HaltView(reasons=tuple(stay_up.causes.active.items()), halted_since_mono=stay_up.halted_since,
                    data_source_up=stay_up.data_source_up, data_source_failures=stay_up.failures,
                    next_attempt_mono=stay_up.next_attempt_at, reconnect_attempts=stay_up.reconnect_attempts)


def build_snapshot(runner: AsyncRunner, now_mono: float, *, running: bool = True) -> SessionSnapshot:
    account = runner.account
    breaker = runner.breaker
    pipeline = runner.pipeline
    price = account.last_price
    pos = account.position
    position = None
    if pos is not None:
        at = price if price is not None else pos.entry_price
        position = PositionView(
            side=pos.side.value, qty=pos.qty, entry_price=pos.entry_price, stop_loss=pos.stop_loss,
            take_profit=pos.take_profit, notional=None if price is None else pos.notional(price),
            unrealized_pnl=None if price is None else pos.unrealized_pnl(price),
            signed_qty=pos.qty * pos.side.sign, gauge_notional=pos.notional(at),
        )
    last = pipeline.last_candle
    candle = None if last is None else CandleView(last.ts, last.open, last.high, last.low, last.close, last.volume)
    mtm = account.mark_to_market()
    equity = account.equity
    state = breaker.state
    breaker_view = BreakerView(
        state=tuple(state.to_dict().items()), tripped=state.tripped, reason=state.reason,
        consecutive_losses=state.consecutive_losses, daily_realized_pnl=state.daily_realized_pnl,
        drawdown_pct=breaker.drawdown_pct(mtm), realized_drawdown_pct=breaker.drawdown_pct(equity),
        max_drawdown_pct=breaker.config.max_drawdown_pct, max_daily_loss_usd=breaker.limits.max_daily_loss_usd,
        action=breaker.config.action,
    )
    now = runner.clock.now()
    return SessionSnapshot(
        taken_mono=now_mono, updated_at=now, running=running, pid=os.getpid(), run_id=runner.run_id,
        mode=runner.mode, session_mode=runner.options.mode, source=runner.options.source,
        symbol=runner.config.strategy.symbol, workspace=str(runner.workspace.root), started_at=runner.started_at or now,
        started_mono=runner.started_mono, duration_min=runner.options.duration_min,
        heartbeat_mono=runner.heartbeat_mono, data_mono=runner.last_progress_monotonic(),
        thresholds=thresholds_of(runner), equity=equity, starting_equity=account.starting_equity,
        mark_to_market_equity=mtm, position=position, trades=len(account.trades),
        candles_processed=pipeline.candles_processed, last_candle=candle, breaker=breaker_view,
        kill_switch_active=pipeline.kill_switch_active, kill_switch=runner.kill_switch.reason(),
        stopped_reason=runner.stopped_reason, stop_detail=runner.stop_detail,
        exit_code=None if running else runner.exit_code, broker=broker_health(runner),
        halt=_halt_view(runner), feed=feed_stats(runner.provider),
    )
