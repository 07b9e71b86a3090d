"""Builders for pure-logic tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from laptop_agents.core.models import Candle

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def candle(i: int, o: str, h: str, low: str, c: str) -> Candle:
    return Candle(ts=T0 + timedelta(minutes=i), open=Decimal(o), high=Decimal(h), low=Decimal(low), close=Decimal(c))


def flat(i: int, price: str) -> Candle:
    return candle(i, price, price, price, price)
