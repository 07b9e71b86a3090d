"""Strictness where Bitunix's sources agree, and the named dialect settings where they do not.

One shared exchange per module for the strictness checks (they only read or get refused); the dialect
points that change trading outcomes are covered per preset here and, end to end, by tests/live under
``LA_MOCK_DIALECT``.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator

import pytest

from laptop_agents.mock_exchange.cli import add_arguments, config_from_args
from laptop_agents.mock_exchange.config import MockExchangeConfig, build_config
from laptop_agents.mock_exchange.dialects import DIALECT_POINTS, PRESETS
from laptop_agents.mock_exchange.testing import MockExchangeHandle, running_mock_exchange

from .conftest import START_MS
from .mx_client import run, signed_client

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01", "orderType": "MARKET"}


@pytest.fixture(scope="module")
def strict() -> Iterator[MockExchangeHandle]:
    # shared by many quick checks: the real limiter would refuse them with 10006 (tested elsewhere)
    with running_mock_exchange(seed=7, time_scale=0, start_time_ms=START_MS, rate_limits_enabled=False) as handle:
        yield handle


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**ORDER, "side": "buy"}, 10002),
        ({**ORDER, "side": "Buy"}, 10002),
        ({**ORDER, "orderType": "market"}, 10002),
        ({**ORDER, "qty": 0.01}, 10002),
        ({**ORDER, "orderType": "LIMIT", "price": 90000}, 10002),
        ({**ORDER, "tradeSide": "open"}, 10002),
        ({**ORDER, "tpPrice": "99000", "tpStopType": "mark_price"}, 10002),
        ({**ORDER, "tpPrice": "99000", "tpStopType": "INDEX"}, 10002),
    ],
)
def test_requests_outside_the_documented_forms_are_refused(strict, body, code) -> None:
    async def scenario() -> None:
        async with signed_client(strict.rest_url) as c:
            assert (await c.post("trade/place_order", body))["code"] == code

    run(scenario())
    assert not strict.admin.account()["positions"]


def test_auth_and_account_strictness(strict) -> None:
    async def scenario() -> None:
        async with signed_client(strict.rest_url) as c:
            q = {"marginCoin": "USDT"}
            assert (await c.get("account"))["code"] == 10002  # marginCoin is required
            assert (await c.get("account", q, nonce=uuid.uuid4().hex[:16]))["code"] == 10007
            assert (await c.get("account", q, nonce=uuid.uuid4().hex + "x"))["code"] == 10007
            ok = await c.get("account", q)
            assert ok["code"] == 0 and isinstance(ok["data"], list)  # docs wrap it in a list

    run(scenario())


def test_sdk_mark_stop_type_history_position_filter_and_position_shape(strict) -> None:
    async def scenario() -> None:
        async with signed_client(strict.rest_url) as c:
            placed = await c.post("trade/place_order", {**ORDER, "tpPrice": "99000", "tpStopType": "MARK",
                                                         "slPrice": "90000", "slStopType": "MARK_PRICE"})
            assert placed["code"] == 0, placed
            (pos,) = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
            assert pos["side"] == "BUY" and isinstance(pos["ctime"], str) and pos["ctime"].isdigit()
            # positionId is ignored by history trades: a made-up one still returns the fill
            trades = (await c.get("trade/get_history_trades", {"symbol": "BTCUSDT", "positionId": "1"}))["data"]
            assert trades["total"] == 1
            order = (await c.get("trade/get_order_detail", {"orderId": placed["data"]["orderId"]}))["data"]
            assert order["tpStopType"] == "MARK_PRICE"
            closed = await c.post("trade/place_order", {**ORDER, "side": "SELL", "reduceOnly": True})
            assert closed["code"] == 0

    run(scenario())


def _close_and_read_history(mx: MockExchangeHandle, close_side: str) -> tuple[int, dict | None]:
    async def scenario() -> tuple[int, dict | None]:
        async with signed_client(mx.rest_url) as c:
            assert (await c.post("trade/place_order", ORDER))["code"] == 0
            (pos,) = (await c.get("position/get_pending_positions", {"symbol": "BTCUSDT"}))["data"]
            res = await c.post("trade/place_order", {**ORDER, "side": close_side, "tradeSide": "CLOSE",
                                                      "positionId": pos["positionId"]})
            trades = (await c.get("trade/get_history_trades", {"symbol": "BTCUSDT"}))["data"]["tradeList"]
            return res["code"], (trades[0] if res["code"] == 0 else None)

    return run(scenario())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_closes_with_its_side_and_reports_the_closing_fill_its_way(preset: str) -> None:
    p = PRESETS[preset]
    with running_mock_exchange(seed=7, time_scale=0, start_time_ms=START_MS, dialect=preset) as mx:
        right = "BUY" if p["close_side"] == "position" else "SELL"
        wrong = "SELL" if right == "BUY" else "BUY"
        code, _ = _close_and_read_history(mx, wrong)
        assert code == 30004 and mx.admin.account()["positions"]  # refused, position untouched
        async def flat() -> None:
            async with signed_client(mx.rest_url) as c:
                await c.post("trade/close_all_position", {"symbol": "BTCUSDT"})
        run(flat())
        code, closing = _close_and_read_history(mx, right)
        assert code == 0 and closing is not None and not mx.admin.account()["positions"]
        assert closing["side"] == ("BUY" if p["closing_fill_side"] == "position" else "SELL")
        assert ("tradeSide" in closing) is p["trade_side_field"]
        if p["trade_side_field"]:
            assert closing["tradeSide"] == "CLOSE"
        assert mx.admin.events("fill")[-1]["side"] == "SELL"  # the ledger keeps the book side


def test_presets_name_every_point_and_explicit_options_win() -> None:
    for name, preset in PRESETS.items():
        cfg = MockExchangeConfig(dialect=name)
        assert {k: getattr(cfg, k) for k in DIALECT_POINTS} == preset
    cfg = MockExchangeConfig(dialect="community", kline_order="desc")
    assert cfg.close_side == "exit" and cfg.kline_order == "desc"
    assert build_config(cfg, dialect="hostile").duplicate_client_id == "open_only"
    assert MockExchangeConfig().dialect == "docs"
    with pytest.raises(ValueError, match="known presets"):
        MockExchangeConfig(dialect="nope")


def test_cli_dialect_flag_env_and_point_override(monkeypatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("LA_MOCK_DIALECT", "ccxt")
    assert config_from_args(parser.parse_args([])).dialect == "ccxt"
    cfg = config_from_args(parser.parse_args(["--dialect", "community", "--trade-side-field", "true"]))
    assert cfg.dialect == "community" and cfg.trade_side_field is True and cfg.close_side == "exit"
    monkeypatch.setenv("LA_MOCK_DIALECT", "hostile")
    with running_mock_exchange(time_scale=0) as mx:
        assert mx.config.dialect == "hostile"
    with running_mock_exchange(time_scale=0, dialect="docs") as mx:
        assert mx.config.dialect == "docs"  # a test naming its dialect is not overridden


def test_system_cancel_status_and_int_error_code(strict) -> None:
    async def scenario() -> None:
        async with signed_client(strict.rest_url) as c:
            ioc = await c.post("trade/place_order", {**ORDER, "orderType": "LIMIT", "price": "50000", "effect": "IOC"})
            assert ioc["code"] == 0, ioc
            detail = (await c.get("trade/get_order_detail", {"orderId": ioc["data"]["orderId"]}))["data"]
            assert detail["status"] == "SYSTEM_CANCELED"
            res = await c.post("trade/cancel_orders", {"symbol": "BTCUSDT", "orderList": [{"orderId": "9"}]})
            assert res["data"]["failureList"][0]["errorCode"] == 20007

    run(scenario())
