"""Red-team variations on issue 13's state validation: files that are not even readable JSON text in the ways
the first fixes did not try. Each must be a one-line StateError (exit 8) naming the file, never a traceback
(exit 1) and never a silent fresh start."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from laptop_agents.core.errors import StateError
from laptop_agents.core.state import StateManager

SAVED_AT = datetime(2026, 11, 29, tzinfo=UTC)  # the state files' saved_at stamp (written, never read back)

GOOD = {"schema_version": 1, "kind": "circuit_breaker", "tripped": False}


def _bytes(attack: str) -> bytes:
    head = json.dumps(GOOD)[:-1]
    return {
        "not_utf8": b"\xff\xfe" + json.dumps(GOOD).encode(),
        "giant_int": (head + ', "consecutive_losses": ' + "9" * 5000 + "}").encode(),
        "deep_nesting": (head + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
        "nul_bytes": b"\x00" * 64,
    }[attack]


@pytest.mark.parametrize("attack", ["not_utf8", "giant_int", "deep_nesting", "nul_bytes"])
def test_unreadable_json_text_is_a_state_error_naming_the_file(tmp_path: Path, attack: str) -> None:
    path = tmp_path / "circuit_breaker_state.json"
    path.write_bytes(_bytes(attack))
    with pytest.raises(StateError, match="circuit_breaker_state.json"):
        StateManager(tmp_path).load("circuit_breaker_state.json", "circuit_breaker")
    assert path.read_bytes() == _bytes(attack)


def test_a_dangling_symlink_is_not_a_fresh_start(tmp_path: Path) -> None:
    """A state file symlinked to a volume that is not mounted is missing state, not no state: a fresh account
    would reset the equity, the drawdown peak and a tripped breaker."""
    path = tmp_path / "async_broker_state.json"
    path.symlink_to(tmp_path / "unmounted" / "async_broker_state.json")
    with pytest.raises(StateError, match="async_broker_state.json.*missing"):
        StateManager(tmp_path).load("async_broker_state.json", "paper_broker")
    assert path.is_symlink()


@pytest.mark.parametrize("attack", ["giant_int", "deep_nesting"])
def test_unusable_optin_and_ledger_json_is_an_optin_error(tmp_path: Path, attack: str) -> None:
    """The opt-in (under its 64 KiB cap) and the replay ledger: the live gate refuses with one line."""
    from laptop_agents.security.optin import OptInError, _ledger_newest, read_document

    body = {"giant_int": '{"format": 1, "x": ' + "9" * 5000 + "}",
            "deep_nesting": '{"x": ' + "[" * 30_000 + "]" * 30_000 + "}"}[attack]
    path = tmp_path / "doc.json"
    path.write_text(body)
    with pytest.raises(OptInError, match="opt-in file"):
        read_document(path)
    with pytest.raises(OptInError, match="opt-in ledger"):
        _ledger_newest(path, "acct")


# --------------------------------------------------------------------------- config files (strict config)
@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "config", tmp_path / "config")
    return tmp_path / "config"


@pytest.mark.parametrize(("file", "attack", "needle"), [
    ("risk.yaml", "duplicate", "duplicate key 'max_daily_loss_usd'"),
    ("risk.yaml", "giant_int", "risk.yaml"),
    ("risk.yaml", "deep_nesting", "risk.yaml"),
    ("strategies/default.json", "duplicate", "duplicate key 'allow_short'"),
    ("strategies/default.json", "giant_int", "default.json"),
])
def test_config_files_that_hide_or_break_a_value_are_refused_in_one_line(cfg_dir: Path, file: str, attack: str,
                                                                         needle: str) -> None:
    """A repeated key silently takes its last value (an operator reading the first sees another limit); an integer
    of thousands of digits or nesting beyond the stack was a traceback."""
    from laptop_agents.config_loader import load_config
    from laptop_agents.core.errors import ConfigError

    path = cfg_dir / file
    text = path.read_text()
    if file.endswith(".yaml"):
        text += {"duplicate": "max_daily_loss_usd: 40\n", "giant_int": "max_leverage: " + "9" * 5000 + "\n",
                 "deep_nesting": "x: " + "[" * 3000 + "]" * 3000 + "\n"}[attack]
    else:
        tail = {"duplicate": '"allow_short": true', "giant_int": '"x": ' + "9" * 5000}[attack]
        text = text.replace('"entry": {', '"entry": {' + tail + ", ", 1)
        assert tail in text
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg_dir, env={})
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_yaml_merge_keys_may_still_be_overridden(cfg_dir: Path) -> None:
    from laptop_agents.config_loader import load_config

    path = cfg_dir / "risk.yaml"
    text = path.read_text().replace("circuit_breaker:\n", "circuit_breaker:\n  <<: {max_drawdown_pct: 4}\n", 1)
    path.write_text(text)
    assert load_config(cfg_dir, env={}).risk.circuit_breaker.max_drawdown_pct == 5


# --------------------------------------------------------------------------- kill switch
@pytest.mark.parametrize("value", ["1", "TRUE", " true ", "yes", "on", "2", "enable", "kill", "y"])
def test_any_kill_switch_value_but_an_explicit_false_is_active(value: str) -> None:
    """Fail safe: an operator who writes LA_KILL_SWITCH=enable (or 2, or y) means stop; only empty/0/false/no/off
    leave it off."""
    from laptop_agents.session.kill_switch import KillSwitch

    assert KillSwitch([], {"LA_KILL_SWITCH": value}).reason() is not None
    for off in ("", "0", "false", "FALSE", " no", "off"):
        assert KillSwitch([], {"LA_KILL_SWITCH": off}).reason() is None


@pytest.mark.parametrize("shape", ["empty", "directory", "dangling_symlink", "symlink_loop"])
def test_anything_named_kill_txt_is_a_kill_switch(tmp_path: Path, shape: str) -> None:
    from laptop_agents.session.kill_switch import KillSwitch

    kill = tmp_path / "kill.txt"
    if shape == "empty":
        kill.write_text("")
    elif shape == "directory":
        kill.mkdir()
    elif shape == "dangling_symlink":
        kill.symlink_to(tmp_path / "gone")
    else:
        kill.symlink_to(kill)
    assert KillSwitch([tmp_path / "absent" / "kill.txt", kill], {}).reason() is not None
    assert KillSwitch([tmp_path / "absent" / "kill.txt"], {}).reason() is None


# --------------------------------------------------------------------------- live breaker vs the live account
@pytest.mark.parametrize(("field", "value"), [("daily_realized_pnl", "1000000"), ("consecutive_losses", 50)])
def test_live_breaker_that_disables_the_daily_loss_limit_is_refused(tmp_path: Path, field: str, value: object) -> None:
    """Live (the mode with real money) checked its breaker file only on its own, so a daily PnL of +1,000,000
    (the $50 daily-loss limit off for the day) or 50 consecutive losses passed. The live account's trades may be
    booked out of order (round trips closed while we were down), so the check is order-free: the day's PnL is at
    most what all trades made or lost, the losing streak at most the losing trades."""
    from laptop_agents.core.state_schema import StateInvalid, check_breaker_state
    from laptop_agents.session.state_store import LIVE_BROKER_KIND, check_workspace_state
    from laptop_agents.session.workspace import BREAKER_STATE_NAME, BROKER_STATE_NAME, Workspace
    from tests.unit.test_state_schema import LIVE, _set, breaker_state

    ws = Workspace(tmp_path, "live")
    states = StateManager(ws.state_dir)
    states.save(BROKER_STATE_NAME, LIVE_BROKER_KIND, LIVE, saved_at=SAVED_AT)
    states.save(BREAKER_STATE_NAME, "circuit_breaker", breaker_state(), saved_at=SAVED_AT)
    assert check_workspace_state(ws) is not None  # the honest pair passes
    states.save(BREAKER_STATE_NAME, "circuit_breaker", _set(breaker_state(), field, value), saved_at=SAVED_AT)
    with pytest.raises(StateError, match=f"{BREAKER_STATE_NAME}.*{field}"):
        check_workspace_state(ws)
    pnls = [__import__("decimal").Decimal(t["pnl"]) for t in LIVE["trades"]]
    with pytest.raises(StateInvalid, match=f"^{field}"):
        check_breaker_state(_set(breaker_state(), field, value), booked_pnls=list(reversed(pnls)))
    check_breaker_state(breaker_state(), booked_pnls=list(reversed(pnls)))


# --------------------------------------------------------------------------- paper position without a real stop
@pytest.mark.parametrize(("field", "value"), [
    ("positions.0.stop_loss", "0"),  # a long's stop at 0 never fires: the position is unmanaged by its stop
    ("positions.0.stop_loss", "0.1"),  # not 0, still never fires; but on the right side, so only 0 is refused
    ("positions.0.stop_loss", "150000"),  # a long's stop above its entry
    ("positions.0.take_profit", "0"),
])
def test_paper_position_stop_must_be_a_real_stop(field: str, value: str) -> None:
    """Every paper position is opened with a stop below (long) or above (short) its entry and a take profit; the
    0 that means "none attached" is only for positions adopted from the exchange (live)."""
    from laptop_agents.core.state_schema import StateInvalid, check_paper_state
    from tests.unit.test_state_schema import _set, paper_state

    bad = _set(paper_state(), field, value)
    if value == "0.1":
        check_paper_state(bad)
        return
    with pytest.raises(StateInvalid, match=f"^{field.replace('.0.', '.*')}"):
        check_paper_state(bad)


def test_a_symlinked_state_file_stays_a_symlink_and_its_target_is_written(tmp_path: Path) -> None:
    """An operator who keeps the state on a persistent volume through a symlink: the atomic rename replaced the
    link by a plain file, so the volume kept the old state (trades and a tripped breaker lost at the next
    container start)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    target = volume / "circuit_breaker_state.json"
    states = StateManager(tmp_path / "state")
    states.directory.mkdir()
    link = states.path("circuit_breaker_state.json")
    link.symlink_to(target)
    states.save("circuit_breaker_state.json", "circuit_breaker", {"tripped": True}, saved_at=SAVED_AT)
    assert link.is_symlink()
    assert json.loads(target.read_text())["tripped"] is True
    assert states.load("circuit_breaker_state.json", "circuit_breaker")["tripped"] is True
