"""The live gate requires a passed `la live preflight` for this account and config hash, young enough.

Every refusal is one ``live trading refused: ...`` line raised before any request reaches the exchange (asserted
from the mock's own request log); the acceptance case uses the record the *real* preflight round trip produced
against the same mock.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from laptop_agents.bitunix.rest import BitunixRestClient
from laptop_agents.execution.preflight import PreflightSettings, run_preflight
from laptop_agents.mock_exchange.testing import running_mock_exchange
from laptop_agents.security.credentials import Credentials
from laptop_agents.security.credentials_file import api_key_fingerprint
from laptop_agents.security.errors import LiveGateRefused
from laptop_agents.security.preflight_seal import preflight_key, seal
from laptop_agents.session.live_gate import LiveStart, start_live_broker
from laptop_agents.session.preflight import exchange_url, preflight_record, write_preflight_record
from tests.conftest import LaEnv
from tests.live.conftest import KEY, SECRET, record_passed_preflight, rest_config, run
from tests.security.helpers import NOW, LiveSetup

MOCK_URL = {"rest_url": ""}
"""The running mock's REST URL (set by the test): the exchange the gate's session trades on, so the records the
cases write passed there unless a case says otherwise."""


def _record(p: Path, setup: LiveSetup, **kw: object) -> Path:
    return record_passed_preflight(p.parent, setup.config, **{"rest_url": MOCK_URL["rest_url"], **kw})  # type: ignore[arg-type]


def _stale(p: Path, setup: LiveSetup) -> None:
    _record(p, setup, at=NOW - timedelta(hours=168, minutes=1))


def _edit(base: dict[str, object] | None = None, **changes: object):
    """A genuine record (``base``: how it was sealed), then edited by hand: what an edited record looks like."""
    def apply(p: Path, setup: LiveSetup) -> None:
        _record(p, setup, **{"at": NOW, **(base or {})})
        record = json.loads(p.read_text())
        record.update({k: (v(setup) if callable(v) else v) for k, v in changes.items()})
        p.write_text(json.dumps(record))
    return apply


def _reseal_without(p: Path, setup: LiveSetup, field: str) -> None:
    """A record sealed genuinely (the account's key) but without ``field``: what an older version wrote."""
    _record(p, setup, at=NOW)
    record = json.loads(p.read_text())
    del record[field]
    p.write_text(json.dumps(seal(record, preflight_key(SECRET))))


def _sealed(**kw: object):
    return lambda p, setup: _record(p, setup, **kw)


CASES = {
    "no_preflight": lambda p, setup: None,
    "preflight_stale": _stale,
    "preflight_other_account": _sealed(at=NOW, account=api_key_fingerprint("someone-elses-key")),
    "preflight_config_changed": _sealed(at=NOW, config_hash="0" * 64),
    # a genuine pass, but on another exchange (a mock, a testnet) than the one this session trades on
    "preflight_other_exchange": _sealed(at=NOW, rest_url="https://fapi.bitunix.com"),
    # a genuine record from before the exchange URL was recorded: nothing says where it passed
    "preflight_other_exchange:no_url": lambda p, setup: _reseal_without(p, setup, "exchange"),
    "bad_preflight:corrupt": lambda p, setup: (p.parent.mkdir(parents=True), p.write_text('{"passed": tru')),
    "bad_preflight:failed": _edit(passed=False),
    "bad_preflight:partial": _edit(steps=["read contract rules"]),
    "bad_preflight:future": _sealed(at=NOW + timedelta(days=1)),
    "bad_preflight:no_zone": _sealed(at=NOW.replace(tzinfo=None)),
    # edited after the preflight wrote it (the seal, security/preflight_seal.py): each refused with one line
    "preflight_tampered:stale_made_fresh": _edit({"at": NOW - timedelta(days=30)}, at=NOW.isoformat()),
    "preflight_tampered:config_hash": _edit({"config_hash": "0" * 64},
                                            config_hash=lambda setup: setup.config.config_hash),
    "preflight_tampered:observed": _edit(observed={"tpsl_orders_per_entry": 2, "position_mode": "ONE_WAY"}),
    "preflight_tampered:no_seal": _edit(seal=None),
    "preflight_tampered:non_ascii_seal": _edit(seal={"alg": "HMAC-SHA256", "value": "\u00e9" * 64}),
    "preflight_tampered:surrogate_seal": _edit(seal={"alg": "HMAC-SHA256", "value": "\udcff" * 64}),
    "preflight_tampered:seal_not_text": _edit(seal={"alg": "HMAC-SHA256", "value": 12345}),
    "preflight_tampered:exchange": _edit({"rest_url": "http://127.0.0.1:8555"},
                                         exchange=lambda setup: exchange_url(MOCK_URL["rest_url"])),
    "preflight_tampered:other_secret": _sealed(at=NOW, secret="a-different-api-secret"),
}


def test_live_start_refuses_without_a_fresh_passed_preflight_for_this_account_and_config(tmp_path: Path) -> None:
    with running_mock_exchange(seed=5, time_scale=0) as mx:
        MOCK_URL["rest_url"] = mx.rest_url
        messages = {}
        for name, make in CASES.items():
            case = tmp_path / name.replace(":", "_")
            setup = LiveSetup(case)
            path = case / "live" / "preflight.json"
            make(path, setup)
            request = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.config,
                                setup.source, rest_config(mx), preflight_file=path)
            with pytest.raises(LiveGateRefused) as err:
                run(lambda request=request: start_live_broker(request, now=NOW))
            text = str(err.value)
            assert err.value.reason == name.split(":")[0], (name, text)
            assert text.startswith("live trading refused: ") and "\n" not in text and "la live preflight" in text
            assert SECRET not in text
            if name.startswith("preflight_tampered"):
                assert "cannot be trusted: its seal does not match" in text or "has no seal" in text, text
            if name == "preflight_other_exchange":  # both exchanges named, and the fix
                assert "https://fapi.bitunix.com:443" in text and exchange_url(mx.rest_url) in text, text
                assert "against the exchange you trade on" in text, text
            messages[name] = text
        # no workspace to read it from at all refuses too (fail safe, never "not checked")
        no_file = replace(request, preflight_file=None)
        with pytest.raises(LiveGateRefused) as err:
            run(lambda: start_live_broker(no_file, now=NOW))
        assert err.value.reason == "no_preflight"
        assert mx.admin.events(["order_request", "request"]) == [], "a refused start reached the exchange"
        assert len(set(messages.values())) == len(messages)


def test_the_real_preflights_record_opens_the_gate_until_it_ages_out(tmp_path: Path) -> None:
    setup = LiveSetup(tmp_path)
    path = tmp_path / "live" / "preflight.json"
    path.parent.mkdir()
    with running_mock_exchange(seed=11, time_scale=0) as mx:
        async def preflight_then_start() -> None:
            async with BitunixRestClient(rest_config(mx), Credentials(KEY, SECRET)) as client:
                report = await run_preflight(client, PreflightSettings())
            write_preflight_record(path, preflight_record(report, api_key_fingerprint(KEY),
                                                          setup.config.config_hash, NOW, preflight_key(SECRET),
                                                          rest_url=mx.rest_url + "/"))
            request = LiveStart(True, setup.optin_path, setup.pubkey, setup.credentials_path, setup.config,
                                setup.source, rest_config(mx), preflight_file=path)
            broker, grant, _ = await start_live_broker(request, now=NOW + timedelta(hours=167))
            assert broker.started and grant.account_fingerprint == api_key_fingerprint(KEY)
            await broker.shutdown("test", NOW)
            # the age is a setting: a shorter one refuses the same record
            with pytest.raises(LiveGateRefused) as err:
                await start_live_broker(replace(request, preflight_max_age=timedelta(hours=1)),
                                        now=NOW + timedelta(hours=2))
            assert err.value.reason == "preflight_stale"

        run(preflight_then_start)


@pytest.mark.slow
@pytest.mark.single_dialect("refused before any request: the mock is only asserted untouched")
def test_la_run_live_without_a_preflight_or_with_an_edited_one_is_one_line_exit_2_and_nothing_sent(la_env: LaEnv) -> None:
    from tests.live.test_live_session_e2e import live_args, setup_live

    with running_mock_exchange(seed=5, time_scale=0) as mx:
        setup_live(la_env, mx, preflight=False)
        result = la_env.run(*live_args(mx))
        assert result.returncode == 2, result.stderr[-2000:]
        lines = [line for line in result.stderr.splitlines() if line.startswith("la: error:")]
        assert len(lines) == 1 and lines[0].startswith("la: error: live trading refused: no passed live preflight")
        assert "Traceback" not in result.stderr
        # a genuine record edited by hand (an old pass made to look fresh) is refused the same way
        from laptop_agents.config_loader import load_config

        config = load_config(la_env.config_dir, env={})
        path = record_passed_preflight(la_env.workspace / "live", config, at=datetime.now(UTC) - timedelta(days=30))
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "at": datetime.now(UTC).isoformat()}))
        edited = la_env.run(*live_args(mx))
        assert edited.returncode == 2, edited.stderr[-2000:]
        (line,) = [ln for ln in edited.stderr.splitlines() if ln.startswith("la: error:")]
        assert "live trading refused: preflight record" in line and "its seal does not match" in line, line
        assert "Traceback" not in edited.stderr
        assert mx.admin.events("order_request", account=KEY) == []


@pytest.mark.single_dialect("the round trip is replaced: only the command's record handling and config lookup run")
@pytest.mark.parametrize("interruption", [ValueError("an answer the client did not expect"), KeyboardInterrupt()],
                         ids=["error", "ctrl_c"])
def test_la_live_preflight_reads_la_config_dir_and_drops_the_old_pass_before_the_round_trip(
        la_env: LaEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, interruption: BaseException) -> None:
    """A preflight that ends short of a pass in any way (not only a failed step) leaves no record: the earlier pass
    is removed before the first exchange request. And `la live preflight` finds its config through
    $LA_CONFIG_DIR like `la run` (run here from a directory with no ./config, no --config-dir, no --rest-url)."""
    from laptop_agents import cli
    from laptop_agents.session import preflight as preflight_module
    from tests.live.test_live_session_e2e import setup_live

    with running_mock_exchange(seed=5, time_scale=0) as mx:
        setup_live(la_env, mx)
        record = la_env.workspace / "live" / "preflight.json"
        assert record.is_file()
        seen: list[tuple[str, bool]] = []

        async def interrupted_round_trip(client: BitunixRestClient, settings: PreflightSettings) -> None:
            seen.append((client.config.base_url, record.exists()))
            raise interruption

        monkeypatch.setattr(preflight_module, "run_preflight", interrupted_round_trip)
        for name, value in la_env.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
        monkeypatch.setenv("LA_CONFIG_DIR", str(la_env.config_dir))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        argv = ["live", "preflight", "--yes-place-a-real-order", "--workspace", str(la_env.workspace)]
        if isinstance(interruption, KeyboardInterrupt):
            assert cli.main(argv) == 130
        else:
            with pytest.raises(ValueError):
                cli.main(argv)
        assert seen == [(mx.rest_url, False)], "the config from $LA_CONFIG_DIR, the old record gone before the trip"
        assert not record.exists()
