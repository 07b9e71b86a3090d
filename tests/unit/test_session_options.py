"""`la run` and `la serve` accept the same session flags, from one declaration (session/options.py)."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import fields
from pathlib import Path

import pytest

from laptop_agents.cli import build_parser
from laptop_agents.session.options import (
    SOURCES,
    RunRequest,
    ServeRequest,
    SessionRequest,
    add_session_arguments,
)


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _shape(action: argparse.Action) -> tuple[object, ...]:
    """What a flag accepts; ``choices`` of --source differ by design (a service never replays a file)."""
    choices = None if action.dest == "source" else action.choices
    return (tuple(action.option_strings), action.dest, action.type, action.nargs, action.const, action.default,
            choices, type(action).__name__)


def _shared_actions() -> list[argparse.Action]:
    scratch = argparse.ArgumentParser(add_help=False)
    add_session_arguments(scratch, "run")
    return list(scratch._actions)


def test_run_and_serve_take_every_shared_flag_as_declared_once() -> None:
    shared = _shared_actions()
    assert len(shared) >= 16
    for command in ("run", "serve"):
        by_flag = {a.option_strings[0]: a for a in _subparser(command)._actions if a.option_strings}
        for action in shared:
            assert action.option_strings[0] in by_flag, f"`la {command}` lacks {action.option_strings[0]}"
            assert _shape(by_flag[action.option_strings[0]]) == _shape(action), (command, action.option_strings)
    assert _subparser("run")._option_string_actions["--source"].choices == SOURCES["run"]
    assert _subparser("serve")._option_string_actions["--source"].choices == SOURCES["serve"]
    # the typed request carries exactly the shared flags, so compose sees each one the same way for both
    assert {f.name for f in fields(SessionRequest)} == {a.dest for a in shared}


SHARED_ARGV = ["--source", "mock", "--rest-url", "http://127.0.0.1:1", "--ws-url", "ws://127.0.0.1:1/public/",
               "--seed", "7", "--candle-interval", "0.5", "--scenario", "losing_streak", "--inject-gap-at", "3",
               "--gap-duration", "4", "--stale-timeout", "9", "--verbose", "--status-every", "0", "--dashboard",
               "--workspace", "ws", "--config-dir", "cfg"]


def test_the_same_shared_argv_gives_run_and_serve_the_same_session_request() -> None:
    parser = build_parser()
    run = RunRequest.from_namespace(parser.parse_args(["run", *SHARED_ARGV]))
    serve = ServeRequest.from_namespace(parser.parse_args(["serve", *SHARED_ARGV]))
    shared = {f.name for f in fields(SessionRequest)}
    assert {n: getattr(run, n) for n in shared} == {n: getattr(serve, n) for n in shared}
    assert run.settings_overrides() == serve.settings_overrides() == {
        "mock": {"seed": 7, "candle_interval_sec": 0.5, "scenario": "losing_streak", "gap_at_sec": 3.0,
                 "gap_duration_sec": 4.0},
        "session": {"stale_data_timeout_sec": 9.0},
        "bitunix": {"rest_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1/public/"},
    }
    assert (run.data_source, serve.data_source) == ("mock", "mock")
    # the defaults: a backtest replays mock history, a real-time session and a service read the exchange
    bare_run = RunRequest.from_namespace(parser.parse_args(["run"]))
    assert (bare_run.data_source, bare_run.workspace_mode) == ("bitunix", "paper")
    backtest = RunRequest.from_namespace(parser.parse_args(["run", "--mode", "backtest"]))
    assert backtest.backtest and backtest.data_source == "mock"
    bare_serve = ServeRequest.from_namespace(parser.parse_args(["serve", "--live"]))
    assert (bare_serve.data_source, bare_serve.workspace_mode) == ("bitunix", "live")


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_bad_shared_flag_value_is_the_same_usage_error_for_both(command: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--candle-interval", "0"])
    assert exc.value.code == 2
    assert "--candle-interval: must be a positive number, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(("source", "live"), [("mock", False), ("bitunix", False), ("bitunix", True)])
def test_compose_gives_run_and_serve_the_same_session_parts(tmp_path: Path, source: str, live: bool) -> None:
    """One composition root: the same shared flags give `la run` and `la serve` the same provider, broker and
    live ticker wiring; only the service's own options (no deadline, stay up, data back-off) differ."""
    from laptop_agents.data.providers.bitunix_ws import BitunixWsProvider
    from laptop_agents.data.providers.mock import MockProvider
    from laptop_agents.session import compose
    from laptop_agents.session.brokers import LiveBrokerFactory, PaperBrokerFactory

    shutil.copytree(Path(__file__).resolve().parents[2] / "config", tmp_path / "config")
    argv = ["--source", source, "--config-dir", str(tmp_path / "config"), "--workspace", str(tmp_path / "ws"),
            "--seed", "3", *(["--live"] if live else [])]
    parser = build_parser()
    run = RunRequest.from_namespace(parser.parse_args(["run", "--duration", "1", *argv]))
    serve = ServeRequest.from_namespace(parser.parse_args(["serve", *argv]))
    runners = []
    for request, build in ((run, compose.compose_run), (serve, compose.compose_service)):
        config = compose.load_session_config(request)
        runners.append(build(request, config, compose.session_workspace(request), compose.Observers()))
    by_run, by_serve = runners
    provider_type = MockProvider if source == "mock" else BitunixWsProvider
    factory_type = LiveBrokerFactory if live else PaperBrokerFactory
    for runner in runners:
        assert type(runner.provider) is provider_type and type(runner.factory) is factory_type
        assert runner.mode == ("live" if live else "paper") and runner.config.settings.mock.seed == 3
    if live:  # the live broker prices entries from its own provider's public ticker, in both commands
        assert all(r.factory.last_price is r.provider.last_price is not None for r in runners)
    assert (by_run.options.duration_min, by_run.options.stay_up) == (1.0, False)
    assert (by_serve.options.duration_min, by_serve.options.stay_up, by_serve.options.mode) == (None, True, "service")
    assert by_run.options.warmup == by_serve.options.warmup == (source == "bitunix")
