"""Configuration of one mock exchange instance: every option, validated, in one place.

The same model is filled from keyword arguments (``MockExchange(**options)``, ``running_mock_exchange(...)``),
from a YAML/JSON file (``--config``) and from CLI flags, so an option means the same thing everywhere.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .dialects import DIALECT_POINTS, apply_preset
from .faults import FaultSettings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})

RATE_LIMIT_GROUPS = ("market", "query", "place_order", "cancel", "flash_close", "tpsl")
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "market": 10,
    "query": 10,
    "place_order": 10,
    "cancel": 5,
    "flash_close": 5,
    "tpsl": 10,
}


class SymbolSpec(BaseModel):
    """One perpetual contract, with the fields ``market/trading_pairs`` reports (BTCUSDT values by default).

    ``start_price`` is where this symbol's price path starts at the market clock's start time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = "BTCUSDT"
    base: str = "BTC"
    quote: str = "USDT"
    min_trade_volume: Decimal = Decimal("0.0001")
    max_limit_order_volume: Decimal = Decimal("100000")
    max_market_order_volume: Decimal = Decimal("50000")
    base_precision: int = Field(4, ge=0, le=8)
    quote_precision: int = Field(1, ge=0, le=8)
    min_buy_price_offset: Decimal = Decimal("-0.99")
    max_sell_price_offset: Decimal = Decimal("100")
    min_leverage: int = 1
    max_leverage: int = 125
    default_leverage: int = 20
    default_margin_mode: Literal["ISOLATION", "CROSS"] = "CROSS"
    price_protect_scope: Decimal = Decimal("0.02")
    symbol_status: Literal["OPEN", "CANCEL_ONLY", "STOP"] = "OPEN"
    start_price: float = Field(95000.0, gt=0)

    @property
    def qty_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.base_precision)

    @property
    def price_step(self) -> Decimal:
        return Decimal(1).scaleb(-self.quote_precision)


class AccountConfig(BaseModel):
    """One API account: key, secret and starting USDT balance (``position_mode`` ONE_WAY or HEDGE)."""

    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1)
    secret: str = Field(min_length=1)
    balance: Decimal = Field(Decimal("10000"), ge=0)
    position_mode: Literal["ONE_WAY", "HEDGE"] = "ONE_WAY"


DEFAULT_API_KEY = "testkey"
DEFAULT_SECRET = "testsecret"


class MockExchangeConfig(BaseModel):
    """All options of the mock exchange.

    Network
      * ``host``: listen address; loopback only (``127.0.0.1`` or ``localhost``), anything else is refused.
      * ``port``: TCP port, 0 = pick a free one (the real port is reported once listening).

    Market
      * ``seed``: seeds the price path, fault decisions and nothing else; same seed, same market.
      * ``time_scale``: market-clock speed, market ms per real ms (60 = one market minute per real second;
        0 = the clock moves only through ``POST /admin/clock``).
      * ``start_time_ms``: market time at start (epoch ms); None = the wall clock at start-up. Pin it for runs
        whose candle times must be identical.
      * ``tick_ms``: market-time spacing of price ticks (must divide 60000); the path is a random walk with
        regimes (range, trend up, trend down, volatile) sampled once per tick.
      * ``history_days``: market history available before the start time (klines before it do not exist).
      * ``annual_volatility``: scale of the random walk (0.6 = 60 % a year, roughly BTC).
      * ``symbols``: the contracts listed (default: BTCUSDT at 95,000).
      * ``push_interval_ms``: real-time cadence of WebSocket market pushes.
      * ``funding_rate``: the constant rate ``market/funding_rate`` reports (no funding is charged).

    Auth and limits
      * ``recv_window_ms``: how far a request's ``timestamp`` may be from the exchange's wall clock.
      * ``rate_limits``: requests per second per group (market per IP; others per api key). Groups:
        ``market``, ``query`` (account/position/order queries, leverage, margin mode), ``place_order``,
        ``cancel`` (cancel_orders, cancel_all_orders), ``flash_close`` (flash_close, close_all_position).
      * ``rate_limits_enabled``: False disables the real limiter (forced faults still apply).
      * ``rate_limit_code``: 10006 (default) or 10005; the page lists both.

    Accounts and trading
      * ``accounts``: the accounts; None (default) means one account ``testkey``/``testsecret`` holding
        ``default_balance`` USDT.
      * ``default_balance``: starting balance of accounts built from ``--account KEY:SECRET`` without one and
        of the default account.
      * ``maker_fee_bps`` / ``taker_fee_bps``: fees in basis points of notional (defaults VIP0: 2 / 6).
      * ``maintenance_margin_rate``: used for liquidation prices; ``liquidation`` turns liquidation off.

    Dialect: the points where the sources disagree (⚠), see :mod:`.dialects` and docs/bitunix-dialects.md
      * ``dialect``: the preset (``docs`` default, ``ccxt``, ``community``, ``hostile``) that fills every
        point below not given explicitly.
      * ``close_side``: side of a ``tradeSide=CLOSE`` order: ``position`` (close long = BUY), ``exit``
        (close long = SELL) or ``either``; the other side is refused with 30004.
      * ``closing_fill_side``: ``side`` of closing fills in trade history (``position`` or ``exit``).
      * ``trade_side_field``: history trades carry ``tradeSide``.
      * ``duplicate_client_id``: 30042 ``forever`` or only while the first order is open (``open_only``).
      * ``kline_push_ts``: kline push ``ts`` = ``push_time``, ``bar_open`` or ``push_time_lagged``.
      * ``kline_volumes``: REST ``quoteVol``/``baseVol`` ``documented`` or ``swapped``.
      * ``system_cancel_status``: status of exchange-cancelled orders (``SYSTEM_CANCELED`` or ``CANCELED``).
      * ``cancel_error_code``: failureList ``errorCode`` as ``int`` or ``string``.
      * ``kline_number_format``: kline numbers as ``string`` or JSON ``number``.
      * ``kline_order``: kline list ``asc`` or ``desc`` by time.
      * ``account_response``: ``account`` data as an ``object`` (what the SDK parses) or a ``list`` (docs).
      * ``private_time_format``: ``ctime``/``mtime`` in private pushes as ``iso_ns`` (nanosecond ISO, seen on
        the real exchange), ``iso`` (milliseconds) or ``ms``.
      * ``private_enum_style``: ``side``/``type`` in private pushes as ``title`` (``Buy``, ``Market``) or
        ``upper`` (``BUY``, ``MARKET``), the two spellings clients have seen.
      * ``private_requires_subscribe``: if True, private pushes go only to connections subscribed to the
        channel; otherwise every logged-in connection gets them.
      * ``tpsl_legs``: a TP/SL order carries both legs (``combined``) or one per leg (``split``).
      * ``tpsl_place_response``: ``tpsl/place_order`` answers ``{orderId}`` (``object``) or a ``list``.
      * ``tpsl_modify``: a TP/SL modify keeps legs not sent (``merge``) or removes them (``replace``).
      * ``tpsl_after_close``: a closed position's TP/SL orders are dropped or ``keep`` listed (never triggering).
      * ``ws_idle_timeout_s``: close a WebSocket that sent nothing for this long (0 = never).
      * ``max_subscriptions``: per connection (Bitunix: 300).

    Evidence
      * ``ledger_file``: append every ledger record as a JSON line to this file (and the final state at stop).
      * ``faults``: faults active from the start (see :class:`FaultSettings`).
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    seed: int = 42
    time_scale: float = Field(1.0, ge=0)
    start_time_ms: int | None = None
    tick_ms: int = Field(1000, gt=0)
    history_days: float = Field(7.0, ge=0)
    annual_volatility: float = Field(0.6, ge=0)
    symbols: list[SymbolSpec] = Field(default_factory=lambda: [SymbolSpec()])
    push_interval_ms: int = Field(500, gt=0)
    funding_rate: Decimal = Decimal("0.0001")
    recv_window_ms: int = Field(5000, ge=0)
    rate_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    rate_limits_enabled: bool = True
    rate_limit_code: Literal[10005, 10006] = 10006
    accounts: list[AccountConfig] | None = None
    default_balance: Decimal = Field(Decimal("10000"), ge=0)
    maker_fee_bps: Decimal = Field(Decimal("2"), ge=0)
    taker_fee_bps: Decimal = Field(Decimal("6"), ge=0)
    maintenance_margin_rate: Decimal = Field(Decimal("0.005"), ge=0, lt=1)
    liquidation: bool = True
    dialect: str = "docs"
    close_side: Literal["position", "exit", "either"] = "position"
    closing_fill_side: Literal["position", "exit"] = "position"
    trade_side_field: bool = True
    duplicate_client_id: Literal["forever", "open_only"] = "forever"
    kline_push_ts: Literal["push_time", "bar_open", "push_time_lagged"] = "push_time"
    kline_volumes: Literal["documented", "swapped"] = "swapped"
    system_cancel_status: Literal["SYSTEM_CANCELED", "CANCELED"] = "SYSTEM_CANCELED"
    cancel_error_code: Literal["int", "string"] = "int"
    kline_number_format: Literal["string", "number"] = "string"
    kline_order: Literal["asc", "desc"] = "asc"
    account_response: Literal["object", "list"] = "list"
    private_time_format: Literal["iso_ns", "iso", "ms"] = "iso_ns"
    private_enum_style: Literal["upper", "title"] = "title"
    private_requires_subscribe: bool = False
    tpsl_legs: Literal["combined", "split"] = "combined"
    tpsl_place_response: Literal["object", "list"] = "object"
    tpsl_modify: Literal["merge", "replace"] = "merge"
    tpsl_after_close: Literal["drop", "keep"] = "drop"
    ws_idle_timeout_s: float = Field(60.0, ge=0)
    max_subscriptions: int = Field(300, gt=0)
    ledger_file: Path | None = None
    faults: FaultSettings = Field(default_factory=FaultSettings)

    @model_validator(mode="before")
    @classmethod
    def _dialect_preset(cls, data: Any) -> Any:
        """Points not given explicitly come from the named preset (see :mod:`.dialects`)."""
        return apply_preset(data) if isinstance(data, dict) else data

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value not in LOOPBACK_HOSTS:
            raise ValueError(f"the mock exchange listens on loopback only (127.0.0.1), not {value!r}")
        return value

    @field_validator("tick_ms")
    @classmethod
    def _tick_divides_minute(cls, value: int) -> int:
        if 60000 % value:
            raise ValueError("tick_ms must divide 60000 so ticks line up with 1-minute candles")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _known_groups(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(RATE_LIMIT_GROUPS)
        if unknown:
            raise ValueError(f"unknown rate-limit groups {sorted(unknown)}; known: {RATE_LIMIT_GROUPS}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("rate limits must be positive")
        return {**DEFAULT_RATE_LIMITS, **value}

    @model_validator(mode="after")
    def _unique_names(self) -> MockExchangeConfig:
        keys = [a.api_key for a in self.effective_accounts()]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate api_key in accounts")
        names = [s.symbol for s in self.symbols]
        if not names or len(names) != len(set(names)):
            raise ValueError("symbols must be a non-empty list of distinct symbols")
        return self

    def effective_accounts(self) -> list[AccountConfig]:
        if self.accounts is None:
            return [AccountConfig(api_key=DEFAULT_API_KEY, secret=DEFAULT_SECRET, balance=self.default_balance)]
        return list(self.accounts)

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        return next((s for s in self.symbols if s.symbol == symbol), None)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping of :class:`MockExchangeConfig` options (validated by the caller)."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of options at the top level")
    return data


def build_config(config: MockExchangeConfig | None = None, **options: Any) -> MockExchangeConfig:
    """Combine an optional base config with keyword overrides into one validated config."""
    if config is None:
        return MockExchangeConfig.model_validate(options)
    if not options:
        return config
    base = config.model_dump()
    if "dialect" in options:  # a new preset re-fills every point not given explicitly now
        base = {k: v for k, v in base.items() if k not in DIALECT_POINTS}
    return MockExchangeConfig.model_validate({**base, **options})
