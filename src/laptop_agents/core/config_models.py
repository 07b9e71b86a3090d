"""Typed, validated configuration.

Three files under the config directory (default `./config`):
  strategies/default.json  the strategy (StrategyConfig)
  risk.yaml                sizing, hard-limit tightening, trading circuit breaker (RiskConfig)
  settings.yaml            runtime: paper broker, session timeouts, mock data (Settings)
Precedence: CLI flag > environment (`LA_<SECTION>__<FIELD>`) > file > default.
A bad value stops start-up with one line naming the file, the field and what is allowed.

Strict: a boolean is `true`/`false` and a number is a number. Nothing is coerced: no "yes" → true, no "12" → 12,
no 12.0 → 12 for a count (pydantic strict mode; decimals take any finite number, never text). YAML is read with
the YAML 1.2 core schema, so `yes`/`no`/`on`/`off` are text (refused where a boolean goes), not booleans.
Environment overrides are text by nature: they parse as strictly (`true`/`false`, decimal numbers) by the type of
the field they set; anything else reaches the model as text and is refused with the same one line.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from laptop_agents.core import hard_limits as hl
from laptop_agents.core.errors import ConfigError
from laptop_agents.core.models import Timeframe

STRATEGY_FILE = Path("strategies/default.json")
RISK_FILE = Path("risk.yaml")
SETTINGS_FILE = Path("settings.yaml")
ENV_PREFIX = "LA_"


SNAPSHOT_CONTEXT = {"decimals_as_text": True}
"""Validation context for a config snapshot (`config_snapshot.json`): there decimals are JSON text by design."""


def _decimal_input(value: Any, info: ValidationInfo) -> Any:
    """A decimal field takes a number (int, float, Decimal), never a bool or text (except in a snapshot)."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and info.context and info.context.get("decimals_as_text"):
        return value
    raise ValueError("must be a number, not " + ("a boolean" if isinstance(value, bool) else "text"
                                                 if isinstance(value, str) else type(value).__name__))


Dec = Annotated[Decimal, Strict(False), BeforeValidator(_decimal_input)]
"""A config decimal: strict about its input (numbers only), lax only in turning a YAML float into a Decimal."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- strategy
class TrendConfig(_Model):
    fast_ema: int = Field(12, ge=2, le=500, description="fast EMA period of the trend filter")
    slow_ema: int = Field(48, ge=3, le=1000, description="slow EMA period of the trend filter")


class EntryConfig(_Model):
    breakout_lookback: int = Field(20, ge=2, le=500, description="enter on a close beyond the last N bars' extreme")
    allow_long: bool = True
    allow_short: bool = True


class ExitConfig(_Model):
    atr_period: int = Field(14, ge=2, le=500)
    stop_atr_mult: Dec = Field(Decimal("2"), gt=0, le=20, description="stop distance in ATRs")
    take_profit_r: Dec = Field(Decimal("2"), gt=0, le=20, description="take profit as a multiple of the stop distance")
    max_hold_candles: int = Field(120, ge=0, le=100000, description="exit after N bars; 0 = never")


class StrategyConfig(_Model):
    """`config/strategies/default.json`: an EMA-trend filter with a breakout entry and ATR exits."""

    name: str = "ema_trend_breakout"
    symbol: str = Field("BTCUSDT", pattern=r"^[A-Z0-9]{2,20}USDT$")
    timeframe: Timeframe = "1m"
    trend: TrendConfig = TrendConfig()
    entry: EntryConfig = EntryConfig()
    exits: ExitConfig = ExitConfig()
    cooldown_candles: int = Field(5, ge=0, le=10000, description="bars to wait after an exit")

    @model_validator(mode="after")
    def _cross_checks(self) -> StrategyConfig:
        if self.trend.fast_ema >= self.trend.slow_ema:
            raise ValueError(
                f"trend.fast_ema ({self.trend.fast_ema}) must be smaller than trend.slow_ema ({self.trend.slow_ema})"
            )
        if not (self.entry.allow_long or self.entry.allow_short):
            raise ValueError("entry.allow_long and entry.allow_short are both false: the strategy could never trade")
        return self

    def validate_config(self) -> StrategyConfig:
        """Re-validate (called on start-up): raises ConfigError with one line on failure."""
        return validate_section(StrategyConfig, self.model_dump(), STRATEGY_FILE)

    @property
    def warmup_candles(self) -> int:
        """Bars needed before every indicator is defined."""
        return max(self.trend.slow_ema, self.entry.breakout_lookback + 1, self.exits.atr_period + 1)


# --------------------------------------------------------------------------- risk
class CircuitBreakerConfig(_Model):
    max_drawdown_pct: Dec = Field(Decimal("5"), gt=0, le=hl.MAX_DRAWDOWN_PCT)
    max_consecutive_losses: int = Field(5, ge=1, le=hl.MAX_CONSECUTIVE_LOSSES)
    action: Literal["halt_entries", "stop_session"] = Field(
        "halt_entries", description="halt_entries: keep running, open nothing new; stop_session: flatten and stop"
    )


class RiskConfig(_Model):
    """`config/risk.yaml`: may tighten the hard limits, never loosen them."""

    risk_per_trade_pct: Dec = Field(Decimal("0.05"), gt=0, le=hl.MAX_RISK_PER_TRADE_PCT)
    max_daily_loss_usd: Dec = Field(hl.MAX_DAILY_LOSS_USD, gt=0, le=hl.MAX_DAILY_LOSS_USD)
    max_position_notional_usd: Dec = Field(hl.MAX_POSITION_NOTIONAL_USD, gt=0, le=hl.MAX_POSITION_NOTIONAL_USD)
    max_risk_per_trade_pct: Dec = Field(hl.MAX_RISK_PER_TRADE_PCT, gt=0, le=hl.MAX_RISK_PER_TRADE_PCT)
    max_leverage: Dec = Field(Decimal("10"), gt=0, le=hl.MAX_LEVERAGE)
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> RiskConfig:
        if self.risk_per_trade_pct > self.max_risk_per_trade_pct:
            raise ValueError(
                f"risk_per_trade_pct ({self.risk_per_trade_pct}) exceeds max_risk_per_trade_pct ({self.max_risk_per_trade_pct})"
            )
        return self

    def hard_limits(self) -> hl.HardLimits:
        return hl.HardLimits(
            max_daily_loss_usd=self.max_daily_loss_usd,
            max_position_notional_usd=self.max_position_notional_usd,
            max_risk_per_trade_pct=self.max_risk_per_trade_pct,
            max_leverage=self.max_leverage,
        )


# --------------------------------------------------------------------------- settings
class PaperSettings(_Model):
    starting_equity: Dec = Field(Decimal("10000"), gt=0, le=Decimal("100000000"))
    maker_fee_bps: Dec = Field(Decimal("2"), ge=0, le=100, description="Bitunix VIP0 maker: 2 bps")
    taker_fee_bps: Dec = Field(Decimal("6"), ge=0, le=100, description="Bitunix VIP0 taker: 6 bps")
    slippage_bps: Dec = Field(Decimal("1"), ge=0, le=500, description="adverse slippage on market fills")
    lot_size: Dec = Field(Decimal("0.0001"), gt=0, description="qty step (Bitunix BTCUSDT basePrecision 4)")
    min_qty: Dec = Field(Decimal("0.0001"), gt=0)
    tick_size: Dec = Field(Decimal("0.1"), gt=0, description="price step (quotePrecision 1)")


class SessionSettings(_Model):
    stale_data_timeout_sec: float = Field(30.0, gt=0, le=3600)
    heartbeat_timeout_sec: float = Field(30.0, gt=0, le=3600, description="watchdog: loop frozen longer than this")
    max_memory_mb: float = Field(1536.0, gt=0, le=65536, description="watchdog: RSS limit (1.5 GB)")
    watchdog_interval_sec: float = Field(1.0, gt=0, le=60)
    control_interval_sec: float = Field(0.25, gt=0, le=10, description="how often the loop checks deadline, kill switch, staleness")
    status_interval_sec: float = Field(1.0, gt=0, le=60)
    shutdown_grace_sec: float = Field(10.0, gt=0, le=600, description="watchdog waits this long for a graceful stop")
    lock_dir: str | None = Field(
        None, min_length=1, exclude=True,  # where locks live is not trading config: kept out of config_hash
        description="host-wide directory of the per-account session locks ($LA_LOCK_DIR wins; default "
                    "/run/laptop-agents, else $XDG_RUNTIME_DIR/laptop-agents, else <tmp>/laptop-agents-<uid>)")


class MockSettings(_Model):
    seed: int = Field(26, description="default seed: a 10-minute default session that trades without tripping the breaker")
    candle_interval_sec: float = Field(2.0, gt=0, le=3600, description="real seconds between mock candles")
    timeframe_sec: int = Field(60, ge=1, le=86400, description="bar length the mock candles represent")
    start_price: Dec = Field(Decimal("95000"), gt=0)
    start_time: str = "2026-01-01T00:00:00Z"
    scenario: Literal["random_walk", "losing_streak"] = "random_walk"
    gap_at_sec: float | None = Field(None, ge=0, description="inject a data gap this many seconds into the session")
    gap_duration_sec: float = Field(35.0, gt=0, le=3600)
    freeze_at_sec: float | None = Field(None, ge=0, description="fault injection: block the event loop at this time")
    freeze_duration_sec: float = Field(60.0, gt=0, le=3600)


class BitunixSettings(_Model):
    """Where the Bitunix market data comes from (point these at the mock exchange for offline runs)."""

    rest_url: str = Field("https://fapi.bitunix.com", pattern=r"^https?://[^\s]+$")
    ws_url: str = Field("wss://fapi.bitunix.com/public/", pattern=r"^wss?://[^\s]+$")
    ping_interval_sec: float = Field(15.0, gt=0, le=300)
    stall_timeout_sec: float = Field(20.0, gt=0, le=3600, description="connected but no data this long → reconnect")
    max_reconnect_attempts: int = Field(10, ge=1, le=1000, description="consecutive failures before FatalError")
    backoff_base_sec: float = Field(0.5, ge=0, le=60)
    backoff_max_sec: float = Field(10.0, ge=0, le=600)
    warmup: bool = Field(True, description="fetch recent closed candles over REST so the strategy starts warm")
    private_ws_url: str = Field("wss://fapi.bitunix.com/private/", pattern=r"^wss?://[^\s]+$",
                                description="live trading: the private WebSocket (order and position pushes)")
    ticker_max_age_ms: int = Field(
        1000, ge=0, le=60000,
        description="live entries: price protection uses the public WebSocket ticker's last price when it is "
                    "younger than this, else one REST tickers round trip (0 = always REST); see "
                    "bitunix.last_price.DEFAULT_TICKER_MAX_AGE_MS for why 1000",
    )


class LiveSettings(_Model):
    """Live trading (`la run --live`): where the signed opt-in and the encrypted credentials are, how to trade."""

    optin_public_key: str | None = Field(
        None, pattern=r"^ed25519:[A-Za-z0-9+/]{43}=$",
        description="the operator's Ed25519 public key (`la live optin keygen`); live trading refuses without it",
    )
    optin_file: str = Field("config/live_optin.json", description="the signed opt-in (`la live optin create|sign`)")
    credentials_file: str = Field("secrets/bitunix.credentials.enc", description="`la secrets encrypt` output")
    passphrase_name: str = Field("la_passphrase", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                 description="systemd credential / Docker secret name of the credentials passphrase")
    leverage: int = Field(5, ge=1, le=20, description="exchange leverage (also capped by risk.max_leverage)")
    margin_mode: Literal["ISOLATION", "CROSS"] = "ISOLATION"
    fill_timeout_sec: float = Field(10.0, gt=0, le=300, description="how long to wait for a market order to fill")
    preflight_max_age_hours: float = Field(
        168.0, gt=0, le=24 * 90,
        description="`la run --live` / `la serve --live` refuse unless `la live preflight` passed for this account "
                    "and config hash within this many hours (there is no off switch)",
    )


class Settings(_Model):
    """`config/settings.yaml`: runtime settings."""

    paper: PaperSettings = PaperSettings()
    session: SessionSettings = SessionSettings()
    mock: MockSettings = MockSettings()
    bitunix: BitunixSettings = BitunixSettings()
    live: LiveSettings = LiveSettings()


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class AppConfig:
    """Everything a session needs to know, validated, plus where it came from."""

    strategy: StrategyConfig
    risk: RiskConfig
    settings: Settings
    config_dir: Path

    def snapshot(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.model_dump(mode="json"),
            "risk": self.risk.model_dump(mode="json"),
            "settings": self.settings.model_dump(mode="json"),
        }

    @property
    def config_hash(self) -> str:
        """sha256 of the effective config: binds artifacts (and later the live opt-in) to it."""
        blob = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def _format_validation_error(err: ValidationError, source: Path) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(file)"
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or first["type"] in ("missing",) else f" (got {got!r})"
    more = len(err.errors()) - 1
    extra = f"; and {more} more problem(s)" if more else ""
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see the defaults written by `la doctor --fix`)"
    return f"invalid config {source}: {loc}: {msg}{shown}{extra}"


def validate_snapshot(snapshot: Mapping[str, Any]) -> None:
    """Validate a run's `config_snapshot.json` (its decimals are JSON text); ValidationError if invalid."""
    StrategyConfig.model_validate(snapshot["strategy"], context=SNAPSHOT_CONTEXT).validate_config()
    RiskConfig.model_validate(snapshot["risk"], context=SNAPSHOT_CONTEXT)
    Settings.model_validate(snapshot["settings"], context=SNAPSHOT_CONTEXT)


M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], data: Any, source: Path) -> M:
    """``model`` validated from ``data``; ConfigError naming ``source``, the field and what is allowed."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


_ENV_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_ENV_INT = re.compile(r"^[-+]?[0-9]+$")
_ENV_DECIMAL = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def _field_type(path: list[str]) -> Any:
    """The type of the Settings field at ``path`` (Optional stripped), or None if there is no such field."""
    model: Any = Settings
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        if typing.get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
        model = annotation
    return annotation


def _env_value(path: list[str], text: str) -> Any:
    """Environment text → the value it strictly denotes for its field; text that denotes nothing stays text
    (and the model refuses it where a boolean or a number goes)."""
    if text.strip().lower() in ("", "null", "none"):
        return None
    kind = _field_type(path)
    if kind is bool:
        return _ENV_BOOL.get(text.strip(), text)
    if kind is int and _ENV_INT.match(text.strip()):
        return int(text.strip())
    if kind is float and _ENV_DECIMAL.match(text.strip()):
        return float(text.strip())
    if kind is Decimal and _ENV_DECIMAL.match(text.strip()):
        return Decimal(text.strip())
    return text


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """`LA_SESSION__STALE_DATA_TIMEOUT_SEC=5` → {"session": {"stale_data_timeout_sec": 5.0}}.

    Only double-underscore names are settings; single names like LA_KILL_SWITCH are not. Values parse strictly
    by the field's type (`true`/`false`, decimal numbers): see :func:`_env_value`.
    """
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(path, value)
    return out


def assemble_config(
    config_dir: Path,
    read: Callable[[Path, bool], Mapping[str, Any]],
    env: Mapping[str, str],
    cli_settings: Mapping[str, Any] | None = None,
) -> AppConfig:
    """The three files under ``config_dir`` validated with the precedence CLI flag > environment > file >
    default; ConfigError with one clear line naming the source.

    Pure: the shell (``laptop_agents.config_loader``) hands in ``read(path, required)`` (the parsed file; ``{}``
    for an absent optional one) and the environment. Files are read and validated one after the other, so the
    first bad one is the one reported."""
    strategy_path, risk_path, settings_path = (config_dir / p for p in (STRATEGY_FILE, RISK_FILE, SETTINGS_FILE))
    strategy = validate_section(StrategyConfig, read(strategy_path, True), strategy_path).validate_config()
    risk = validate_section(RiskConfig, read(risk_path, True), risk_path)
    settings_data = dict(read(settings_path, False))
    env_part = env_overrides(env)
    source = settings_path
    if env_part:
        settings_data = deep_merge(settings_data, env_part)
        source = Path(f"{settings_path} + LA_* environment")
    if cli_settings:
        settings_data = deep_merge(settings_data, cli_settings)
        source = Path(f"{source} + command-line flags")
    settings = validate_section(Settings, settings_data, source)
    return AppConfig(strategy=strategy, risk=risk, settings=settings, config_dir=config_dir)
