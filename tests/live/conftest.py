"""Helpers for live-path tests against the mock exchange over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from laptop_agents.bitunix import BitunixRestClient, Credentials, RestConfig
from laptop_agents.core.models import Candle, OrderIntent, Side
from laptop_agents.execution.bitunix_broker import BitunixBroker, LiveBrokerSettings
from laptop_agents.mock_exchange.testing import MockExchangeHandle
from laptop_agents.resilience.retry import RetryPolicy

T = TypeVar("T")
KEY, SECRET = "testkey", "testsecret"
QUICK_RETRY = RetryPolicy(max_attempts=4, base_delay_sec=0.02, max_delay_sec=0.1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rest_config(mx: MockExchangeHandle, **overrides: Any) -> RestConfig:
    return RestConfig(
        base_url=mx.rest_url,
        timeout_sec=overrides.pop("timeout_sec", 2.0),
        retry=overrides.pop("retry", QUICK_RETRY),
        **overrides,
    )


def make_broker(mx: MockExchangeHandle, key: str = KEY, secret: str = SECRET, **rest_overrides: Any) -> BitunixBroker:
    cfg = rest_config(mx, **rest_overrides)
    creds = Credentials(key, secret)

    def factory() -> BitunixRestClient:
        return BitunixRestClient(cfg, creds)

    return BitunixBroker(factory(), LiveBrokerSettings(leverage=5), client_factory=factory)


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(main())


def price_of(mx: MockExchangeHandle) -> Decimal:
    return Decimal(mx.admin.state()["symbols"]["BTCUSDT"]["lastPrice"])


def candle(price: Decimal, minute: int = 0) -> Candle:
    return Candle(T0 + timedelta(minutes=minute), price, price, price, price, Decimal(1))


def intent(side: Side, price: Decimal, qty: str = "0.01", reference: Decimal | None = None) -> OrderIntent:
    d = price * Decimal("0.01")
    sl, tp = (price - d, price + d) if side is Side.LONG else (price + d, price - d)
    return OrderIntent(side=side, qty=Decimal(qty), stop_loss=sl, take_profit=tp,
                       reference_price=reference if reference is not None else price)


def ledger_fills(mx: MockExchangeHandle, key: str = KEY) -> list[dict[str, Any]]:
    return mx.admin.events("fill", account=key)


def accepted_orders(mx: MockExchangeHandle, key: str = KEY) -> list[dict[str, Any]]:
    return [r for r in mx.admin.events("order_request", account=key) if r["accepted"]]


def record_passed_preflight(state_dir: Path, config: Any, at: datetime | None = None, account: str | None = None,
                            config_hash: str | None = None, secret: str = SECRET, rest_url: str | None = None) -> Path:
    """A passed `la live preflight` record for KEY's account and ``config``, written exactly as the command
    writes it (preflight_record + write_preflight_record), without a round trip on the mock: the session tests
    assert exact ledgers and wallets, which a real preflight's order pair would change. The real round trip
    is tested in test_live_preflight.py (per dialect) and its record accepted by the gate there. Sealed with the
    record key of ``secret``'s account, as the command seals it. ``rest_url``: the exchange the preflight passed
    on, which must be the one the live session trades on (default the config's bitunix.rest_url; a test that
    hands the gate ``rest_config(mx)`` passes ``mx.rest_url``)."""
    from laptop_agents.execution.preflight import PREFLIGHT_STEPS, PreflightReport
    from laptop_agents.security.credentials_file import api_key_fingerprint
    from laptop_agents.security.preflight_seal import preflight_key
    from laptop_agents.session.preflight import PREFLIGHT_FILE, preflight_record, write_preflight_record

    report = PreflightReport(symbol=config.strategy.symbol, steps=list(PREFLIGHT_STEPS),
                             observed={"tpsl_orders_per_entry": 1, "closing_fill_side": "position",
                                       "trade_side_field": True, "position_mode": "ONE_WAY"},
                             wallet_before="10000", wallet_after="10000")
    record = preflight_record(report, account or api_key_fingerprint(KEY), config_hash or config.config_hash,
                              at or datetime.now(UTC), preflight_key(secret),
                              rest_url=rest_url or config.settings.bitunix.rest_url)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / PREFLIGHT_FILE
    write_preflight_record(path, record)
    return path
