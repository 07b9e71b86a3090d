"""Red-team variations on issue 13's state validation: files that are not even readable JSON text in the ways
the first fixes did not try. Each must be a one-line StateError (exit 8) naming the file, never a traceback
(exit 1) and never a silent fresh start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laptop_agents.core.errors import StateError
from laptop_agents.core.state import StateManager

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
