"""The live preflight's record and command: the session-layer half of `la live preflight`.

The exchange round trip itself is :mod:`laptop_agents.execution.preflight` (client and venue only). This module
is what needs the rest of the shell: the signed opt-in gate and the decrypted credentials (security/), the live
workspace (session/), the record in live state, sealed so an edited record cannot unlock live trading
(:mod:`laptop_agents.security.preflight_seal`, threat model there), and the gate's check of it
(:func:`require_preflight`, called by session/live_gate.py before any exchange request).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from laptop_agents.bitunix import BitunixRestClient, MarginMode
from laptop_agents.execution.preflight import (
    PREFLIGHT_STEPS,
    PreflightFailed,
    PreflightReport,
    PreflightSettings,
    run_preflight,
)
from laptop_agents.security.errors import LiveGateRefused
from laptop_agents.security.preflight_seal import preflight_key, seal, seal_problem

__all__ = ["PREFLIGHT_FILE", "exchange_url", "preflight_command", "preflight_record", "require_preflight", "write_preflight_record"]


def exchange_url(url: str) -> str:
    """The exchange a REST base URL names, normalized for comparison: ``scheme://host:port`` (lower case, the
    default port made explicit, no path, no trailing slash). ``https://FAPI.bitunix.com/`` and
    ``https://fapi.bitunix.com:443`` are the same exchange; ``http://127.0.0.1:8555`` (a mock) is another."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number: keep it verbatim, it matches only itself
        return url.strip().rstrip("/")
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def preflight_record(report: PreflightReport, account_fingerprint: str, config_hash: str, now: datetime,
                     seal_key: bytes, *, rest_url: str) -> dict[str, Any]:
    """The live-state record a later gate can require (account + config hash + exchange URL + time + observed
    dialect), sealed with the account's record key (security/preflight_seal.py: an edited record is refused).
    ``rest_url`` is the REST base URL the round trip used: a pass against a mock or a testnet must not unlock
    the real exchange."""
    record = {"passed": True, "account": account_fingerprint, "config_hash": config_hash,
              "exchange": exchange_url(rest_url), "at": now.isoformat(), **report.to_json()}
    return seal(record, seal_key)


PREFLIGHT_FILE = "preflight.json"


def write_preflight_record(path: Path, record: dict[str, Any]) -> None:
    """Atomically (tmp + rename): the gate never reads half a record."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


CLOCK_TOLERANCE = timedelta(minutes=5)


def _refuse(reason: str, message: str) -> Exception:
    return LiveGateRefused(reason, f"live trading refused: {message}")


def require_preflight(path: Path, account: str, config_hash: str, now: datetime, max_age: timedelta, *,
                      rest_url: str, seal_key: bytes | None) -> dict[str, Any]:
    """The live gate's second half: a passed preflight for this account, config hash and exchange (``rest_url``,
    the REST base URL the live session will trade on), at most ``max_age`` old.

    Why: the first autonomous session must not be the first time this exchange meets our client. The record is
    validated field by field (a corrupt, hand-edited or partial record refuses, it never counts as a pass) and its
    seal is verified with ``seal_key`` (the account's record key, security/preflight_seal.py): a record changed
    after `la live preflight` wrote it (time, account, config hash, result, steps, observed) refuses.
    ``seal_key=None`` skips only the seal and is for read-only reports that cannot unlock the credentials (the
    audit says so); the live gate always passes the key. Refusals are ``LiveGateRefused`` (reasons no_preflight,
    bad_preflight, preflight_other_account, preflight_tampered, preflight_other_exchange, preflight_config_changed,
    preflight_stale) raised before any exchange request. A record without an exchange URL (written before the URL
    was recorded) is refused as preflight_other_exchange: nothing says which exchange it passed on. Returns the
    record.
    """
    fix = "run `la live preflight --yes-place-a-real-order` for this account and config"
    if not path.is_file():
        raise _refuse("no_preflight", f"no passed live preflight at {path}; {fix}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _refuse("bad_preflight", f"preflight record {path} is unreadable ({type(exc).__name__}); {fix}") from None

    def bad(what: str) -> Exception:
        return _refuse("bad_preflight", f"preflight record {path} is invalid ({what}); {fix}")

    if not isinstance(record, dict):
        raise bad("not a JSON object")
    if record.get("passed") is not True:
        raise bad("'passed' is not true")
    for key in ("account", "config_hash", "at", "symbol"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise bad(f"'{key}' missing or not a string")
    if record.get("steps") != list(PREFLIGHT_STEPS):
        raise bad("'steps' is not the full list of preflight steps")
    if not isinstance(record.get("observed"), dict) or not record["observed"]:
        raise bad("'observed' missing")
    try:
        at = datetime.fromisoformat(record["at"])
    except ValueError:
        raise bad(f"'at' {record['at']!r} is not an ISO time") from None
    if at.tzinfo is None:
        raise bad(f"'at' {record['at']!r} has no time zone")
    if record["account"] != account:
        raise _refuse("preflight_other_account",
                      f"the preflight in {path} passed for account {record['account']}, this session trades {account}; {fix}")
    if seal_key is not None:
        problem = seal_problem(record, seal_key)
        if problem is not None:
            raise _refuse("preflight_tampered", f"preflight record {path} cannot be trusted: {problem}; {fix}")
    expected_exchange = exchange_url(rest_url)
    if record.get("exchange") != expected_exchange:
        found = record.get("exchange")
        passed_on = (f"passed on {str(found)[:80]}" if isinstance(found, str) and found
                     else "records no exchange URL (written by an older version)")
        raise _refuse("preflight_other_exchange",
                      f"the preflight in {path} {passed_on}, this session trades on {expected_exchange}; run "
                      f"`la live preflight --yes-place-a-real-order` against the exchange you trade on")
    if record["config_hash"] != config_hash:
        raise _refuse("preflight_config_changed",
                      f"the preflight in {path} passed for config {record['config_hash'][:12]}, the config is now "
                      f"{config_hash[:12]}; {fix}")
    if at > now + CLOCK_TOLERANCE:
        raise bad(f"'at' {at.isoformat()} is in the future (now {now.isoformat()})")
    if now - at > max_age:
        hours = max_age.total_seconds() / 3600
        raise _refuse("preflight_stale",
                      f"the preflight in {path} passed at {at.isoformat()}, more than {hours:g} h ago "
                      f"(live.preflight_max_age_hours); {fix}")
    return record


def preflight_command(config_dir: Path, workspace_root: str | None, rest_url: str | None, yes: bool,
                      out: TextIO, err: TextIO, now: datetime | None = None) -> int:
    """``la live preflight``: the signed opt-in gate, then the round trip; the record goes to the live workspace.

    Exit 0 passed; 11 a step answered unexpectedly (flattened); 10 flattening could not be verified. The gate's
    refusals raise (one line, their own exit code) before any request is sent.
    """
    from laptop_agents.bitunix import RestConfig
    from laptop_agents.config_loader import load_config
    from laptop_agents.core.errors import ExitCode, UsageError
    from laptop_agents.execution.live_start import broker_settings_for
    from laptop_agents.security.optin import LEDGER_NAME, check_live_gate
    from laptop_agents.security.passphrase import PassphraseSource
    from laptop_agents.session.workspace import Workspace

    if not yes:
        raise UsageError("la live preflight places a REAL minimum-size order on the exchange and closes it again; "
                         "add --yes-place-a-real-order to proceed")
    now = now or datetime.now(UTC)
    config = load_config(config_dir)
    live, bitunix = config.settings.live, config.settings.bitunix
    workspace = Workspace.resolve(workspace_root, "live")
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    grant = check_live_gate(True, Path(live.optin_file), live.optin_public_key, Path(live.credentials_file),
                            PassphraseSource(name=live.passphrase_name), config, now=now,
                            optin_ledger=workspace.state_dir / LEDGER_NAME)
    leverage = broker_settings_for(config, live.leverage).leverage
    settings = PreflightSettings(symbol=config.strategy.symbol, leverage=leverage,
                                 margin_mode=MarginMode(live.margin_mode))
    url = rest_url or bitunix.rest_url
    print(f"preflight on {url}: account {grant.account_fingerprint}, {settings.symbol}, a REAL order of the "
          "minimum quantity", file=out)

    async def go() -> PreflightReport:
        async with BitunixRestClient(RestConfig(base_url=url), grant.credentials) as client:
            return await run_preflight(client, settings)

    path = workspace.state_dir / PREFLIGHT_FILE
    # Fail safe: the earlier pass goes before the first exchange request, so whatever ends this run short of a
    # pass (a failed step, a transport error, a bug, Ctrl-C) leaves no record that could still unlock live trading.
    if path.exists():
        path.unlink()
        print(f"preflight: removed the earlier record {path}; live trading stays refused until this preflight "
              "passes", file=err)
    try:
        report = asyncio.run(go())
    except PreflightFailed as exc:
        print(f"preflight FAILED: {exc}", file=err)
        return int(ExitCode.AUDIT_CRITICAL if exc.flat else ExitCode.NOT_FLAT)
    for step in report.steps:
        print(f"  ok  {step}", file=out)
    print("observed: " + ", ".join(f"{k}={v}" for k, v in report.observed.items()), file=out)
    record = preflight_record(report, grant.account_fingerprint, grant.payload.config_hash, now,
                              preflight_key(grant.credentials.secret_key), rest_url=url)
    write_preflight_record(path, record)
    print(f"preflight PASSED: recorded in {path} (config {grant.payload.config_hash[:12]}, exchange "
          f"{record['exchange']})", file=out)
    return 0
