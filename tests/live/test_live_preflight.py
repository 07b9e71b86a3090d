"""`la live preflight` core against the mock, once per dialect preset, and with a step that answers unexpectedly."""

from __future__ import annotations

import pytest

from laptop_agents.bitunix.rest import BitunixRestClient
from laptop_agents.execution.preflight import PreflightFailed, PreflightSettings, run_preflight
from laptop_agents.mock_exchange.testing import running_mock_exchange
from tests.live.conftest import KEY, SECRET, rest_config, run

pytestmark = pytest.mark.dialects  # runs once per mock dialect preset (docs/bitunix-dialects.md)

MX = {"seed": 11, "time_scale": 0}


def _client(mx) -> BitunixRestClient:
    from laptop_agents.security.credentials import Credentials

    return BitunixRestClient(rest_config(mx), Credentials(KEY, SECRET))


def test_preflight_round_trip_passes_and_records_the_dialect_it_saw(mock_dialect) -> None:
    with running_mock_exchange(**MX) as mx:
        async def scenario():
            async with _client(mx) as client:
                return await run_preflight(client, PreflightSettings())

        report = run(scenario)
        dialect = mx.config
        assert report.steps == ["read contract rules", "read account", "set margin mode and leverage",
                                "open the minimum quantity with TP/SL", "read the position",
                                "read the pending TP/SL", "modify the TP/SL", "cancel the TP/SL",
                                "close the position", "read history", "read the wallet"]
        assert report.observed["tpsl_orders_per_entry"] == (2 if dialect.tpsl_legs == "split" else 1)
        assert report.observed["closing_fill_side"] == dialect.closing_fill_side
        assert report.observed["trade_side_field"] is dialect.trade_side_field
        account = mx.admin.account(KEY)
        assert account["positions"] == [] and account["openOrders"] == []
        fills = mx.admin.events("fill", account=KEY)
        assert len(fills) == 2 and fills[0]["qty"] == "0.0001"  # the minimum, once in, once out
        # the exchange's own record of the TP/SL step: created by the entry, moved, cancelled by us (not by the close)
        tpsl = mx.admin.events("tpsl", account=KEY)
        created = [r for r in tpsl if r["event"] == "CREATE"]
        moved = [r for r in tpsl if r["event"] == "UPDATE"]
        assert len(created) == len(moved) == report.observed["tpsl_orders_per_entry"]
        assert all(r["reason"] == "modify" for r in moved)
        assert [r["reason"] for r in tpsl if r["event"] == "CLOSE"] == ["cancel"] * len(created)
        assert account["tpslOrders"] == []


def test_an_unexpected_answer_flattens_and_names_what_differed() -> None:
    # the exchange ignores TP/SL on the order (a step answers unlike the client expects)
    with running_mock_exchange(**MX) as mx:

        async def scenario():
            async with _client(mx) as client:
                real = client.get_order_detail

                async def without_tpsl(**kw):
                    from dataclasses import replace
                    return replace(await real(**kw), tp_price=None, sl_price=None)

                client.get_order_detail = without_tpsl  # type: ignore[method-assign]
                return await run_preflight(client, PreflightSettings())

        with pytest.raises(PreflightFailed) as exc:
            run(scenario)
        assert exc.value.step == "open the minimum quantity with TP/SL" and exc.value.flat
        assert "TP/SL" in str(exc.value) and "got TP None / SL None" in str(exc.value)
        account = mx.admin.account(KEY)
        assert account["positions"] == [] and account["openOrders"] == []  # flattened


def test_a_tpsl_modify_answered_but_not_applied_flattens_and_prints_what_differed() -> None:
    # the docs warn a successful answer is not the success of the operation: the mock answers the modify and
    # changes nothing; the read-back must catch it
    with running_mock_exchange(**MX, faults={"tpsl_modify_ignored_next": 1}) as mx:

        async def scenario():
            async with _client(mx) as client:
                return await run_preflight(client, PreflightSettings(poll_attempts=3, poll_interval_sec=0.05))

        with pytest.raises(PreflightFailed) as exc:
            run(scenario)
        err = exc.value
        assert err.step == "modify the TP/SL" and err.flat
        assert err.expected.startswith("TP ") and "after moving both legs 5 ticks up" in err.expected
        assert err.got.startswith("TP ") and err.got.split(" (")[0] != err.expected.split(" after")[0]
        assert mx.admin.events("fault", account=KEY)[0]["fault"] == "tpsl_modify_ignored"
        # TP/SL orders left after the close (dialect tpsl_after_close=keep) are cancelled by the flatten
        closes = {r["reason"] for r in mx.admin.events("tpsl", account=KEY) if r["event"] == "CLOSE"}
        assert closes == ({"cancel"} if mx.config.tpsl_after_close == "keep" else {"position_closed"})
        account = mx.admin.account(KEY)
        assert account["positions"] == [] and account["openOrders"] == [] and account["tpslOrders"] == []


@pytest.mark.slow
def test_la_live_preflight_cli_needs_the_flag_then_records_a_pass(la_env, mock_dialect) -> None:
    import json

    from laptop_agents.session.preflight import exchange_url
    from tests.live.test_live_session_e2e import setup_live

    with running_mock_exchange(seed=5, time_scale=0) as mx:
        setup_live(la_env, mx)
        refused = la_env.run("live", "preflight", "--rest-url", mx.rest_url)
        assert refused.returncode == 2 and "--yes-place-a-real-order" in refused.stderr
        assert "Traceback" not in refused.stderr and mx.admin.events("order_request", account=KEY) == []
        if mock_dialect in (None, "docs"):  # the CLI's failure path (the step itself fails under every preset above)
            # a TP/SL step that answers unexpectedly: exit 11, one line naming the difference, flat, no record
            mx.admin.set_faults(tpsl_modify_ignored_next=1)
            failed = la_env.run("live", "preflight", "--yes-place-a-real-order", "--rest-url", mx.rest_url)
            print(failed.stdout + failed.stderr)
            assert failed.returncode == 11, failed.stderr[-2000:]
            (line,) = [ln for ln in failed.stderr.splitlines() if "preflight FAILED" in ln]
            assert "step 'modify the TP/SL': expected TP " in line and "account flattened" in line
            # the earlier (setup's) pass no longer stands: removed, said so
            assert "removed the earlier record" in failed.stderr
            assert "Traceback" not in failed.stderr and not (la_env.workspace / "live" / "preflight.json").exists()
            assert mx.admin.account(KEY)["positions"] == [] and mx.admin.account(KEY)["tpslOrders"] == []
        result = la_env.run("live", "preflight", "--yes-place-a-real-order", "--rest-url", mx.rest_url)
        print(result.stdout)  # the report's capture of the preflight output
        assert result.returncode == 0, result.stderr[-2000:]
        assert "preflight PASSED" in result.stdout and "  ok  read the wallet" in result.stdout
        record = json.loads((la_env.workspace / "live" / "preflight.json").read_text())
        assert record["passed"] and record["config_hash"] and record["account"]
        assert record["exchange"] == exchange_url(mx.rest_url)  # the exchange the round trip ran on, sealed
        assert record["observed"]["closing_fill_side"] == mx.config.closing_fill_side
        assert record["seal"]["alg"] == "HMAC-SHA256" and SECRET not in json.dumps(record)
        assert mx.admin.account(KEY)["positions"] == []
