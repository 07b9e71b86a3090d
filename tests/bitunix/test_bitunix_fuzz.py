"""Property tests: no input makes the parsers or the provider's frame handler crash.

The only acceptable outcomes for untrusted input are a typed message, a skip
(``None``/``WsUnhandled``) or :class:`MalformedMessage`.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laptop_agents.bitunix.errors import MalformedMessage
from laptop_agents.bitunix.schemas import (
    WsKline,
    WsUnhandled,
    parse_account,
    parse_cancel_result,
    parse_klines,
    parse_order,
    parse_order_page,
    parse_positions,
    parse_tickers,
    parse_trade_page,
    parse_trading_pairs,
    parse_ws_message,
)
from laptop_agents.data.providers.bitunix_ws import BitunixWsConfig, BitunixWsProvider

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "0", "1e3", "NaN", "-Infinity", "1.5", "2024-01-01T00:00:00Z", "BUY"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=20,
)
numberish = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(-(10**6), 10**15),
    st.floats(),
    st.text(max_size=6),
    st.none(),
)
kline_push = st.fixed_dictionaries(
    {
        "ch": st.sampled_from(["market_kline_1min", "mark_kline_1day", "market_kline_1month", "x"]),
        "symbol": st.one_of(st.just("BTCUSDT"), st.text(max_size=8), st.integers()),
        "ts": numberish,
        "data": st.one_of(
            st.fixed_dictionaries(
                {k: numberish for k in ("o", "h", "l", "c")},
                optional={"b": numberish, "q": numberish},
            ),
            json_values,
        ),
    }
)
control = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(["ping", "pong", "login", "connect", "subscribe"]), json_values)},
    optional={"pong": json_values, "ping": json_values, "data": json_values, "code": json_values},
)
REST_PARSERS = [
    parse_klines, parse_trading_pairs, parse_tickers, parse_account, parse_order,
    parse_order_page, parse_cancel_result, parse_positions, parse_trade_page,
]


def _assert_only_malformed(fn: Any, value: Any) -> Any:
    try:
        return fn(value)
    except MalformedMessage as exc:
        assert str(exc)  # renders without raising
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_or_bytes_never_crash_the_ws_parser(raw: str | bytes) -> None:
    _assert_only_malformed(parse_ws_message, raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, kline_push, control))
def test_arbitrary_json_never_crashes_the_ws_parser(value: Any) -> None:
    raw = json.dumps(value, allow_nan=True)
    result = _assert_only_malformed(parse_ws_message, raw)
    if isinstance(result, WsKline):
        assert result.low <= result.open <= result.high
        assert result.interval.floor(result.ts_ms) <= result.ts_ms


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes_rest_parsers(value: Any) -> None:
    for parser in REST_PARSERS:
        _assert_only_malformed(parser, value)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(max_size=80), kline_push.map(json.dumps),
                          control.map(json.dumps), json_values.map(json.dumps)), max_size=10))
def test_provider_frame_handler_skips_anything_bad(frames: list[str]) -> None:
    provider = BitunixWsProvider(BitunixWsConfig())
    for frame in frames:
        result = provider.handle_message(frame)
        assert result is None or isinstance(result, WsKline)
        if result is not None:
            assert result.symbol.upper() == "BTCUSDT" and result.channel == "market_kline_1min"
    handled = provider.malformed_messages + provider.unexpected_messages + provider.pongs
    assert handled <= len(frames)


def test_unhandled_kind_labels_are_bounded() -> None:
    msg = parse_ws_message(json.dumps({"ch": "z" * 10_000}))
    assert isinstance(msg, WsUnhandled) and len(msg.kind) <= 40
