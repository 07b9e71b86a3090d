"""The real trading pipeline (Supervisor, risk gate, breaker) driving BitunixBroker against the mock exchange.

The exchange's price follows the candle stream (each close is set on the mock before the candle is
processed), so the strategy trades as it would live. At the end, trades.csv, our equity and the mock's
ledger must agree to the last decimal.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest

from laptop_agents.agents.supervisor import Supervisor
from laptop_agents.bitunix.transport import DOCUMENTED_RATE_LIMITS
from laptop_agents.core.clock import SimulatedClock
from laptop_agents.core.events import EventBus, EventName
from laptop_agents.data.providers.mock import MockBarGenerator
from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.reporting.trades_csv import write_trades_csv
from laptop_agents.resilience.rate_limiter import RateLimit
from laptop_agents.resilience.trading_circuit_breaker import TradingCircuitBreaker
from laptop_agents.session.live_gate import LiveStart, start_live_broker
from laptop_agents.session.pipeline import TradingPipeline
from tests.live.conftest import record_passed_preflight, rest_config, run
from tests.security.helpers import NOW, LiveSetup

FAST_LIMITS = {group: RateLimit(500.0, 50) for group in DOCUMENTED_RATE_LIMITS}


@pytest.mark.slow
def test_live_session_through_the_pipeline_agrees_with_the_ledger(tmp_path: Path) -> None:
    with running_mock_exchange(seed=3, time_scale=0, rate_limits={g: 1000 for g in
                                                                  ("market", "query", "place_order", "cancel",
                                                                   "flash_close")}) as mx:
        setup = LiveSetup(tmp_path)
        config = setup.config
        candles = list(islice(MockBarGenerator(config.settings.mock, config.strategy.symbol), 300))
        request = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, config, setup.source,
                            rest_config(mx, rate_limits=FAST_LIMITS), private_ws_url=mx.private_ws_url,
                            preflight_file=record_passed_preflight(tmp_path / "live", config, at=NOW, rest_url=mx.rest_url))
        published: list = []

        async def session() -> None:
            mx.admin.set_price(str(candles[0].open))
            broker, _, start_events = await start_live_broker(request, now=NOW)
            bus = EventBus()
            bus.subscribe(published.append)
            bus.publish_all(start_events)
            breaker = TradingCircuitBreaker(config.risk.circuit_breaker, config.risk.hard_limits())
            supervisor = Supervisor(config.strategy, config.risk, config.settings.paper, breaker)
            clock = SimulatedClock(candles[0].ts)
            pipeline = TradingPipeline(supervisor, broker, bus, clock)
            for candle in candles:
                mx.admin.set_price(str(candle.close))
                clock.advance_to(candle.ts + timedelta(minutes=1))
                if await pipeline.process(candle):
                    break
            await pipeline.flatten("session_end")
            await broker.shutdown("session_end", clock.now())
            write_trades_csv(tmp_path / "trades.csv", broker.trades)
            broker.verify_accounting()
            account = mx.admin.account()
            assert account["positions"] == [] and account["openOrders"] == []
            assert broker.equity == Decimal(account["balance"])
            assert broker.fill_notices["ws"] >= 1

        run(session, timeout=120)
        fills = mx.admin.events("fill", account="testkey")
        duplicates = [r for r in mx.admin.events("order_request") if r["accepted"] and r["duplicate"]]

    rows = list(csv.DictReader((tmp_path / "trades.csv").open()))
    names = [e.name for e in published]
    assert len(rows) >= 2, "the seeded session should open and close trades"
    assert names.count(EventName.EXECUTION_EXIT) == len(rows)
    assert names.count(EventName.EXECUTION_FILL) == len(rows)
    assert len(fills) == 2 * len(rows) and not duplicates
    for row in rows:  # trade_id is the exchange's positionId: each round trip maps to its own fills
        mine = [f for f in fills if f["positionId"] == row["trade_id"]]
        assert len(mine) == 2, f"ledger fills for trade {row['trade_id']}: {mine}"
        assert sum(Decimal(f["realizedPNL"]) for f in mine) == Decimal(row["gross_pnl"])
        assert sum(Decimal(f["fee"]) for f in mine) == Decimal(row["fees"])
    total_pnl = sum(Decimal(r["pnl"]) for r in rows)
    final_balance = Decimal(fills[-1]["balance"])
    assert final_balance - Decimal(10000) == total_pnl
