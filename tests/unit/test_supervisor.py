from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from laptop_agents.agents.supervisor import Supervisor
from laptop_agents.core.config_models import (
    CircuitBreakerConfig,
    MockSettings,
    PaperSettings,
    RiskConfig,
    StrategyConfig,
)
from laptop_agents.core.models import AccountSnapshot, Side
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
from tests.unit.helpers import T0

D = Decimal


def make(risk: RiskConfig | None = None) -> Supervisor:
    risk = risk or RiskConfig()
    breaker = TradingCircuitBreaker(risk.circuit_breaker, risk.hard_limits())
    return Supervisor(StrategyConfig(), risk, PaperSettings(), breaker)


def drive(sup: Supervisor, n: int, seed: int = 26, kill_switch: bool = False) -> list[tuple[str, str]]:
    """Feed mock bars through supervisor + broker; return the decision trail."""
    broker = PaperBroker(PaperSettings())
    trail: list[tuple[str, str]] = []
    for i, bar in enumerate(MockBarGenerator(MockSettings(seed=seed))):
        if i >= n:
            break
        now = T0 + timedelta(minutes=i)
        _, trade = broker.on_candle(bar, now)
        if trade:
            sup.on_trade_closed(trade, broker.equity, now)
            trail.append(("exit", trade.exit_reason))
        d = sup.on_candle(bar, broker.snapshot(), now, kill_switch=kill_switch)
        trail += [(e.name, str(e.data.get("reason", e.data.get("signal")))) for e in d.events]
        if d.close_reason:
            _, trade = broker.close_position(d.close_reason, bar.close, bar.ts, now)
            assert trade is not None
            sup.on_trade_closed(trade, broker.equity, now)
            trail.append(("exit", trade.exit_reason))
        if d.intent:
            assert d.intent.qty > 0
            if d.intent.side is Side.LONG:
                assert d.intent.stop_loss < d.intent.reference_price < d.intent.take_profit
            else:
                assert d.intent.take_profit < d.intent.reference_price < d.intent.stop_loss
            broker.submit(d.intent, bar, now)
            trail.append(("entry", d.intent.side.value))
    return trail


def test_same_candles_same_decisions() -> None:
    assert drive(make(), 600) == drive(make(), 600)
    assert ("entry", "LONG") in drive(make(), 600) or ("entry", "SHORT") in drive(make(), 600)


def test_no_signal_before_warmup() -> None:
    trail = drive(make(), StrategyConfig().warmup_candles - 1)
    assert not [t for t in trail if t[0] == "SignalGenerated"]


def test_kill_switch_blocks_every_entry() -> None:
    trail = drive(make(), 600, kill_switch=True)
    assert not [t for t in trail if t[0] == "entry"]
    assert ("RiskRejected", "kill_switch_active") in trail


def test_tripped_breaker_blocks_entries() -> None:
    sup = make()
    sup.breaker.state.tripped = True
    sup.breaker.state.reason = "max_drawdown"
    trail = drive(sup, 600)
    assert not [t for t in trail if t[0] == "entry"]
    assert ("RiskRejected", "circuit_breaker_tripped:max_drawdown") in trail


def test_time_exit_after_max_hold() -> None:
    risk = RiskConfig()
    breaker = TradingCircuitBreaker(risk.circuit_breaker, risk.hard_limits())
    cfg = StrategyConfig.model_validate({"exits": {"max_hold_candles": 3, "stop_atr_mult": 20, "take_profit_r": 20}})
    sup = Supervisor(cfg, risk, PaperSettings(), breaker)
    broker = PaperBroker(PaperSettings())
    reasons = []
    for i, bar in enumerate(MockBarGenerator(MockSettings(seed=26))):
        if i > 800:
            break
        _, trade = broker.on_candle(bar, T0)
        d = sup.on_candle(bar, broker.snapshot(), T0)
        if d.close_reason:
            held = broker.position.bars_held if broker.position else -1
            reasons.append((d.close_reason, held))
            broker.close_position(d.close_reason, bar.close, bar.ts, T0)
        if d.intent:
            broker.submit(d.intent, bar, T0)
    assert reasons and all(r == ("time_exit", 3) for r in reasons)


def test_stop_session_action_asks_to_stop() -> None:
    risk = RiskConfig(circuit_breaker=CircuitBreakerConfig(action="stop_session", max_consecutive_losses=1))
    sup = make(risk)
    from laptop_agents.core.models import Trade

    t = Trade("T", Side.LONG, D(1), T0, T0, D(1), D(1), D(-1), D(0), D(-1), "stop_loss")
    assert sup.on_trade_closed(t, D("9999"), T0).stop_reason == "circuit_breaker"


def test_daily_budget_exhausted_rejects_signal() -> None:
    sup = make()
    sup.breaker.state.trading_day = T0.strftime("%Y-%m-%d")
    sup.breaker.state.daily_realized_pnl = D("-49.999")
    trail = drive(sup, 600)
    assert not [t for t in trail if t[0] == "entry"]
    assert any(t[0] == "RiskRejected" and "below exchange minimum" in t[1] for t in trail)


def test_snapshot_type() -> None:
    snap = AccountSnapshot(equity=D(1), position=None)
    assert (snap.equity, snap.position) == (D(1), None)


def test_entry_refused_when_it_cannot_live_to_the_next_candle() -> None:
    """The shell says how long is left and when the next candle is due; too little left → RiskRejected."""
    from laptop_agents.agents.supervisor import EntryWindow

    broker = PaperBroker(PaperSettings())
    open_sup, closing_sup = make(), make()
    saw_entry = False
    for i, bar in enumerate(MockBarGenerator(MockSettings(seed=26))):
        if i >= 600:
            break
        now = T0 + timedelta(minutes=i)
        ample = open_sup.on_candle(bar, broker.snapshot(), now, window=EntryWindow(61.0, 60.0))
        late = closing_sup.on_candle(bar, broker.snapshot(), now, window=EntryWindow(59.9, 60.0))
        assert late.intent is None
        if ample.intent is not None:
            saw_entry = True
            rejected = [e for e in late.events if e.name == "RiskRejected"]
            assert [(e.data["reason"], e.data["session_left_sec"], e.data["next_candle_in_sec"]) for e in rejected] \
                == [("session_ending", 59.9, 60.0)]
    assert saw_entry
