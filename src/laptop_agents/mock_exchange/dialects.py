"""Named dialects: the points where Bitunix's sources disagree or are silent, one setting each, and presets.

Where every source agrees the mock is simply strict (see ``docs/bitunix-dialects.md``). Where they do not,
the mock cannot know which reading the real exchange follows, so each disputed point is a setting, and a
*preset* picks one plausible combination. A client is right only if it works under every preset: tests run
the live suite once per preset (``LA_MOCK_DIALECT``), and ``la mock-exchange --dialect NAME`` picks one.

Explicit options always win over the preset: ``MockExchangeConfig(dialect="community", kline_order="desc")``
is the community preset with descending klines.
"""

from __future__ import annotations

import os
from typing import Any

DIALECT_ENV = "LA_MOCK_DIALECT"
"""Environment variable naming the preset the test harness (and ``la mock-exchange``) uses by default."""

DEFAULT_DIALECT = "docs"

# Every disputed point, its allowed values (first = the documentation's reading where it has one).
DIALECT_POINTS: dict[str, tuple[Any, ...]] = {
    # hedge-doc "close long = side BUY, tradeSide CLOSE" vs the community "close long = SELL"; "either" = old mock
    "close_side": ("position", "exit", "either"),
    # the `side` a closing fill carries in get_history_trades: the position's side (ccxt flips it) or the exit side
    "closing_fill_side": ("position", "exit"),
    # whether history trades carry a `tradeSide` field (ccxt reads one; no official example shows it)
    "trade_side_field": (True, False),
    # 30042 for a clientId seen on any order ("forever") or only while that order is open ("open_only")
    "duplicate_client_id": ("forever", "open_only"),
    # kline push `ts`: push time (docs example is not bar-aligned), bar open, or push time with the previous
    # bar's final data arriving after the next bar started ("push_time_lagged": flooring ts mislabels it)
    "kline_push_ts": ("push_time", "bar_open", "push_time_lagged"),
    # REST kline `quoteVol`/`baseVol`: as named, or swapped as the docs' example suggests
    "kline_volumes": ("documented", "swapped"),
    # status of orders the exchange itself cancels (IOC/FOK leftovers, reduce-only with nothing to reduce)
    "system_cancel_status": ("SYSTEM_CANCELED", "CANCELED"),
    # cancel_orders failureList `errorCode`: integer (docs example) or digit string
    "cancel_error_code": ("int", "string"),
    # response shapes the mock already varied before dialects existed
    "kline_number_format": ("string", "number"),
    "kline_order": ("asc", "desc"),
    "account_response": ("list", "object"),
    "private_time_format": ("iso_ns", "iso", "ms"),
    "private_enum_style": ("title", "upper"),
    "private_requires_subscribe": (False, True),
    # TP/SL orders (tpsl/*): one order carries both legs (docs' pending example: one `id` with tp and sl) or one
    # order per leg (tradingiq's place fixture answers a TP order and an SL order)
    "tpsl_legs": ("combined", "split"),
    # tpsl/place_order answer: `{orderId}` (docs) or a list of `{orderId, clientId}` (Java SDK, tradingiq)
    "tpsl_place_response": ("object", "list"),
    # tpsl/modify_order and position/modify_order: a leg not sent keeps its values ("merge", the docs' "at least
    # one of tpPrice or slPrice") or is removed ("replace": the order becomes exactly the request)
    "tpsl_modify": ("merge", "replace"),
    # TP/SL orders of a position that closed: dropped with it, or (undocumented) left listed, never triggering
    "tpsl_after_close": ("drop", "keep"),
}

PRESETS: dict[str, dict[str, Any]] = {
    # The official documentation read literally, with the real exchange's observed push formats.
    "docs": {
        "close_side": "position",
        "closing_fill_side": "position",
        "trade_side_field": True,
        "duplicate_client_id": "forever",
        "kline_push_ts": "push_time",
        "kline_volumes": "swapped",
        "system_cancel_status": "SYSTEM_CANCELED",
        "cancel_error_code": "int",
        "kline_number_format": "string",
        "kline_order": "asc",
        "account_response": "list",
        "private_time_format": "iso_ns",
        "private_enum_style": "title",
        "private_requires_subscribe": False,
        "tpsl_legs": "combined",
        "tpsl_place_response": "object",
        "tpsl_modify": "merge",
        "tpsl_after_close": "drop",
    },
    # What ccxt's adapter assumes: docs close convention, tradeSide on trades, numbers as JSON numbers.
    "ccxt": {
        "close_side": "position",
        "closing_fill_side": "position",
        "trade_side_field": True,
        "duplicate_client_id": "open_only",
        "kline_push_ts": "bar_open",
        "kline_volumes": "documented",
        "system_cancel_status": "SYSTEM_CANCELED",
        "cancel_error_code": "string",
        "kline_number_format": "number",
        "kline_order": "desc",
        "account_response": "object",
        "private_time_format": "ms",
        "private_enum_style": "upper",
        "private_requires_subscribe": True,
        "tpsl_legs": "combined",
        "tpsl_place_response": "list",
        "tpsl_modify": "merge",
        "tpsl_after_close": "drop",
    },
    # What the two community clients (and our first client) assume: close with the exit side.
    "community": {
        "close_side": "exit",
        "closing_fill_side": "exit",
        "trade_side_field": False,
        "duplicate_client_id": "forever",
        "kline_push_ts": "bar_open",
        "kline_volumes": "documented",
        "system_cancel_status": "CANCELED",
        "cancel_error_code": "string",
        "kline_number_format": "string",
        "kline_order": "asc",
        "account_response": "object",
        "private_time_format": "iso",
        "private_enum_style": "upper",
        "private_requires_subscribe": False,
        "tpsl_legs": "combined",
        "tpsl_place_response": "object",
        "tpsl_modify": "replace",
        "tpsl_after_close": "drop",
    },
    # The worst plausible combination: every silent point read the way that hurts a naive client most.
    "hostile": {
        "close_side": "position",
        "closing_fill_side": "position",
        "trade_side_field": False,
        "duplicate_client_id": "open_only",
        "kline_push_ts": "push_time_lagged",
        "kline_volumes": "swapped",
        "system_cancel_status": "SYSTEM_CANCELED",
        "cancel_error_code": "int",
        "kline_number_format": "number",
        "kline_order": "desc",
        "account_response": "list",
        "private_time_format": "iso_ns",
        "private_enum_style": "title",
        "private_requires_subscribe": True,
        "tpsl_legs": "split",
        "tpsl_place_response": "list",
        "tpsl_modify": "replace",
        "tpsl_after_close": "keep",
    },
}

for _name, _preset in PRESETS.items():  # a preset must name every point with an allowed value
    assert set(_preset) == set(DIALECT_POINTS), _name
    assert all(_preset[k] in DIALECT_POINTS[k] for k in _preset), _name


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def env_dialect() -> str | None:
    """The preset named by ``LA_MOCK_DIALECT`` (None if unset or empty)."""
    value = os.environ.get(DIALECT_ENV, "").strip()
    return value or None


def apply_preset(options: dict[str, Any]) -> dict[str, Any]:
    """Fill every dialect point not given explicitly from the preset named by ``options['dialect']``.

    Raises ValueError naming the known presets for an unknown name.
    """
    name = options.get("dialect") or DEFAULT_DIALECT
    preset = PRESETS.get(str(name))
    if preset is None:
        raise ValueError(f"unknown dialect {name!r}; known presets: {', '.join(PRESETS)}")
    out = dict(options)
    out["dialect"] = str(name)
    for key, value in preset.items():
        if out.get(key) is None:
            out[key] = value
    return out


def describe(config: Any) -> dict[str, Any]:
    """The dialect in effect (preset name and every point's value) of a MockExchangeConfig."""
    return {"dialect": config.dialect, **{k: getattr(config, k) for k in DIALECT_POINTS}}
