from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from laptop_agents.config_loader import default_files, load_config
from laptop_agents.core.config_models import StrategyConfig
from laptop_agents.core.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPO_CONFIG, tmp_path / "config")
    return tmp_path / "config"


def test_shipped_config_files_are_the_defaults() -> None:
    for rel, text in default_files().items():
        assert (REPO_CONFIG / rel).read_text() == text, f"config/{rel} drifted from the model defaults"


def test_loads_and_hashes_stably(cfg_dir: Path) -> None:
    a = load_config(cfg_dir, env={})
    b = load_config(cfg_dir, env={})
    assert a.config_hash == b.config_hash and len(a.config_hash) == 64
    assert a.strategy.validate_config() == a.strategy


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("max_daily_loss_usd", 51, "max_daily_loss_usd"),
        ("max_position_notional_usd", 250000, "max_position_notional_usd"),
        ("max_risk_per_trade_pct", 2, "max_risk_per_trade_pct"),
        ("risk_per_trade_pct", 0, "risk_per_trade_pct"),
    ],
)
def test_hard_limits_cannot_be_loosened(cfg_dir: Path, field: str, value: object, needle: str) -> None:
    data = yaml.safe_load((cfg_dir / "risk.yaml").read_text())
    data[field] = value
    (cfg_dir / "risk.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(cfg_dir, env={})
    msg = str(err.value)
    assert "risk.yaml" in msg and needle in msg and "\n" not in msg


def test_breaker_ceilings(cfg_dir: Path) -> None:
    data = yaml.safe_load((cfg_dir / "risk.yaml").read_text())
    data["circuit_breaker"]["max_consecutive_losses"] = 6
    (cfg_dir / "risk.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="circuit_breaker.max_consecutive_losses"):
        load_config(cfg_dir, env={})


def test_unknown_field_and_cross_field_errors(cfg_dir: Path) -> None:
    path = cfg_dir / "strategies" / "default.json"
    data = json.loads(path.read_text())
    data["trend"]["fast_emaa"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"trend\.fast_emaa: unknown field"):
        load_config(cfg_dir, env={})
    del data["trend"]["fast_emaa"]
    data["trend"].update(fast_ema=50, slow_ema=20)
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"default.json: \(file\): trend.fast_ema \(50\) must be smaller than"):
        load_config(cfg_dir, env={})
    assert StrategyConfig().validate_config() == StrategyConfig()


def test_precedence_cli_over_env_over_file(cfg_dir: Path) -> None:
    env = {"LA_SESSION__STALE_DATA_TIMEOUT_SEC": "12", "LA_MOCK__SEED": "7", "LA_KILL_SWITCH": "false"}
    c = load_config(cfg_dir, env=env)
    assert c.settings.session.stale_data_timeout_sec == 12 and c.settings.mock.seed == 7
    c = load_config(cfg_dir, env=env, cli_settings={"session": {"stale_data_timeout_sec": 3}})
    assert c.settings.session.stale_data_timeout_sec == 3 and c.settings.mock.seed == 7
    with pytest.raises(ConfigError, match=r"LA_\* environment: mock.seed"):
        load_config(cfg_dir, env={"LA_MOCK__SEED": "abc"})


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="la doctor --fix"):
        load_config(tmp_path, env={})


def test_settings_decimal_defaults() -> None:
    c = load_config(REPO_CONFIG, env={})
    assert c.settings.paper.maker_fee_bps == Decimal(2) and c.settings.paper.taker_fee_bps == Decimal(6)


def test_timeframes_have_one_table_the_config_and_the_venue_agree_with() -> None:
    """The strategy's timeframes are core.models' table: the config accepts exactly those, and the venue's kline
    interval of the same name has the same length (its own table also names the exchange's wire intervals)."""
    from typing import get_args

    from laptop_agents.bitunix import interval_from_rest
    from laptop_agents.core.models import TIMEFRAME_SEC, Timeframe

    assert get_args(Timeframe) == tuple(TIMEFRAME_SEC)
    assert StrategyConfig.model_fields["timeframe"].annotation == Timeframe
    for name, seconds in TIMEFRAME_SEC.items():
        assert interval_from_rest(name).duration_ms == seconds * 1000, name
