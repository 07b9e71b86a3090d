"""Strict config (issue 13): a boolean is true/false and a number is a number, in the files and in LA_* variables.

No "yes" → true, no "12" → 12, no silent 12.0 → 12; YAML 1.1's yes/no/on/off are text, not booleans. Every refusal
is one line naming the file (or the environment), the field and the value.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from laptop_agents.config_loader import default_files, load_config
from laptop_agents.core.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    shutil.copytree(REPO_CONFIG, tmp_path / "config")
    return tmp_path / "config"


def _refused(cfg_dir: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(cfg_dir, env=env or {})
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(("section", "field", "value"), [
    ("entry", "allow_long", "yes"), ("entry", "allow_short", 1), ("entry", "breakout_lookback", "12"),
    ("exits", "max_hold_candles", 12.0), ("exits", "atr_period", True), ("exits", "stop_atr_mult", "2"),
    ("trend", "fast_ema", 12.5),
])
def test_strategy_json_values_are_not_coerced(cfg_dir: Path, section: str, field: str, value: Any) -> None:
    path = cfg_dir / "strategies" / "default.json"
    data = json.loads(path.read_text())
    data[section][field] = value
    path.write_text(json.dumps(data))
    msg = _refused(cfg_dir)
    assert "default.json" in msg and f"{section}.{field}" in msg and repr(value) in msg, msg


@pytest.mark.parametrize(("file", "old", "new", "needle"), [
    ("settings.yaml", "warmup: true", "warmup: yes", "bitunix.warmup"),
    ("settings.yaml", "warmup: true", "warmup: on", "bitunix.warmup"),
    ("settings.yaml", "seed: 26", "seed: '26'", "mock.seed"),
    ("settings.yaml", "seed: 26", "seed: 26.0", "mock.seed"),
    ("settings.yaml", "stale_data_timeout_sec: 30.0", "stale_data_timeout_sec: '30'", "session.stale_data_timeout_sec"),
    ("settings.yaml", "gap_at_sec: null", "gap_at_sec: .inf", "mock.gap_at_sec"),
    ("settings.yaml", "starting_equity: 10000", "starting_equity: '10000'", "paper.starting_equity"),
    ("risk.yaml", "max_consecutive_losses: 5", "max_consecutive_losses: 3.0", "circuit_breaker.max_consecutive_losses"),
    ("risk.yaml", "risk_per_trade_pct: 0.05", "risk_per_trade_pct: '0.05'", "risk_per_trade_pct"),
])
def test_yaml_values_are_not_coerced(cfg_dir: Path, file: str, old: str, new: str, needle: str) -> None:
    path = cfg_dir / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    msg = _refused(cfg_dir)
    assert file in msg and needle in msg, msg


@pytest.mark.parametrize(("name", "value"), [
    ("LA_BITUNIX__WARMUP", "yes"), ("LA_BITUNIX__WARMUP", "1"), ("LA_MOCK__SEED", "12.0"), ("LA_MOCK__SEED", "0x1f"),
    ("LA_SESSION__STALE_DATA_TIMEOUT_SEC", "5s"), ("LA_SESSION__STALE_DATA_TIMEOUT_SEC", "nan"),
    ("LA_PAPER__STARTING_EQUITY", "1_000"), ("LA_PAPER__STARTING_EQUITY", "Infinity"),
])
def test_environment_text_is_parsed_strictly(cfg_dir: Path, name: str, value: str) -> None:
    msg = _refused(cfg_dir, {name: value})
    field = name.removeprefix("LA_").lower().replace("__", ".")
    assert "LA_* environment" in msg and field in msg and repr(value) in msg, msg


def test_environment_accepts_true_false_and_decimal_numbers(cfg_dir: Path) -> None:
    cfg = load_config(cfg_dir, env={"LA_BITUNIX__WARMUP": "false", "LA_MOCK__SEED": "12",
                                    "LA_SESSION__STALE_DATA_TIMEOUT_SEC": "1e1", "LA_PAPER__STARTING_EQUITY": "5000.5",
                                    "LA_MOCK__GAP_AT_SEC": "null", "LA_BITUNIX__REST_URL": "http://127.0.0.1:1"})
    s = cfg.settings
    assert s.bitunix.warmup is False and s.mock.seed == 12 and s.session.stale_data_timeout_sec == 10.0
    assert s.paper.starting_equity == Decimal("5000.5") and s.mock.gap_at_sec is None
    assert load_config(cfg_dir, env={"LA_BITUNIX__WARMUP": "true"}).settings.bitunix.warmup is True


def test_shipped_defaults_and_plain_numbers_still_load(tmp_path: Path) -> None:
    for rel, text in default_files().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert load_config(tmp_path, env={}).settings.paper.starting_equity == Decimal("10000")
    data = yaml.safe_load((tmp_path / "settings.yaml").read_text())
    data["session"]["shutdown_grace_sec"] = 3  # an integer where a float goes is a number: fine
    data["mock"]["start_time"] = "2026-01-01T00:00:00Z"
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(data).replace("'2026-01-01T00:00:00Z'", "2026-01-01T00:00:00Z"))
    cfg = load_config(tmp_path, env={})
    assert cfg.settings.session.shutdown_grace_sec == 3.0 and cfg.settings.mock.start_time == "2026-01-01T00:00:00Z"
