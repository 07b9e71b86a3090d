"""The live gate: what must hold before a live session may open its broker, checked in order.

1. the signed opt-in (security/optin.py: flag, pinned key, signature, lifetime, replay ledger, the encrypted
   credentials and their passphrase, account, symbol, limits and config hash),
2. a fresh passed preflight record for that account, config and exchange URL (`la live preflight`),
3. only then the exchange client and the broker (execution/live_start.py :func:`open_live_broker`).

The order is the safety property: no exchange client exists before both checks passed, so a refused start
cannot have sent a single request. The account lock is taken by the runner with the key the broker factory
names (session/brokers.py). The session runner (`la run --live`, `la serve --live`, wired by
session/compose.py) calls :func:`start_live_broker` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from laptop_agents.bitunix import LastPrice, MarginMode, RestConfig
from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.events import Event
from laptop_agents.core.state import StateManager
from laptop_agents.execution.bitunix_broker import STATE_KIND, BitunixBroker, LiveBrokerSettings
from laptop_agents.execution.live_start import broker_settings_for, open_live_broker
from laptop_agents.security.errors import LiveGateRefused
from laptop_agents.security.optin import LEDGER_NAME, LiveGrant, check_live_gate
from laptop_agents.security.passphrase import PassphraseSource
from laptop_agents.security.preflight_seal import preflight_key
from laptop_agents.session.preflight import PREFLIGHT_FILE, require_preflight
from laptop_agents.session.workspace import BROKER_STATE_NAME, Workspace


@dataclass(frozen=True)
class LiveStart:
    """Everything needed to start live trading; paths and flags only, no secret values."""

    flag: bool
    optin_path: Path | None
    pinned_pubkey: str | None
    credentials_path: Path | None
    config: AppConfig
    passphrase_source: PassphraseSource = field(default_factory=PassphraseSource)
    rest: RestConfig = field(default_factory=RestConfig)
    broker: LiveBrokerSettings | None = None
    state: dict[str, Any] | None = None
    """A previous ``BitunixBroker.to_state()`` (from the *live* state directory), or None."""
    private_ws_url: str | None = None
    """``wss://fapi.bitunix.com/private/`` (or the mock's); None = fills by REST polling only."""
    last_price: LastPrice | None = None
    """The public ticker's last price (kept by the kline provider); None = price protection reads REST tickers."""
    optin_ledger: Path | None = None
    """The live workspace's record of the newest opt-in per account (security/optin.py); None = no replay check."""
    preflight_file: Path | None = None
    """The live workspace's ``preflight.json`` (`la live preflight`). Required: None refuses, like a missing file."""
    preflight_max_age: timedelta | None = None
    """How old a passed preflight may be; None = the config's ``live.preflight_max_age_hours``."""


def preflight_path(workspace: Workspace) -> Path:
    """Where `la live preflight` records its pass and where the live gate reads it."""
    return workspace.state_dir / PREFLIGHT_FILE


def load_live_state(workspace: Workspace) -> dict[str, Any] | None:
    """The previous live broker state from ``.workspace/live/`` (never the paper directory), or None."""
    if workspace.mode != "live":
        raise ValueError("live broker state lives only in the live workspace (Workspace(mode='live'))")
    return StateManager(workspace.state_dir).load(BROKER_STATE_NAME, STATE_KIND)


def live_start_for(
    config: AppConfig,
    workspace: Workspace | None,
    *,
    flag: bool,
    state: dict[str, Any] | None = None,
    passphrase_source: PassphraseSource | None = None,
    last_price: LastPrice | None = None,
) -> LiveStart:
    """The live start a session's settings ask for: the config's opt-in, key, credentials, exchange URLs and broker
    settings, the live workspace's opt-in ledger and preflight record."""
    live = config.settings.live
    bitunix = config.settings.bitunix
    session = config.settings.session
    return LiveStart(
        flag=flag,
        optin_path=Path(live.optin_file),
        pinned_pubkey=live.optin_public_key,
        credentials_path=Path(live.credentials_file),
        config=config,
        passphrase_source=passphrase_source or PassphraseSource(name=live.passphrase_name),
        rest=RestConfig(base_url=bitunix.rest_url),
        broker=broker_settings_for(config, live.leverage, margin_mode=MarginMode(live.margin_mode),
                                   fill_timeout_sec=live.fill_timeout_sec,
                                   stop_budget_sec=session.shutdown_grace_sec,
                                   blind_stop_sec=session.stale_data_timeout_sec),
        state=state,
        optin_ledger=None if workspace is None else workspace.state_dir / LEDGER_NAME,
        preflight_file=None if workspace is None else preflight_path(workspace),
        private_ws_url=bitunix.private_ws_url,
        last_price=last_price,
    )


async def start_live_broker(
    request: LiveStart, *, now: datetime | None = None
) -> tuple[BitunixBroker, LiveGrant, list[Event]]:
    """Gate → preflight record → client → broker.start(). Raises LiveGateRefused (no request sent) or a start-up
    error. The preflight check runs after the opt-in gate (which proves the account and config hash) and before
    any client exists."""
    now = now or datetime.now(UTC)
    grant = check_live_gate(
        request.flag,
        request.optin_path,
        request.pinned_pubkey,
        request.credentials_path,
        request.passphrase_source,
        request.config,
        now=now,
        optin_ledger=request.optin_ledger,
    )
    max_age = request.preflight_max_age or timedelta(hours=request.config.settings.live.preflight_max_age_hours)
    if request.preflight_file is None:
        raise LiveGateRefused("no_preflight", "live trading refused: no live workspace to read the preflight record "
                              "from; run `la live preflight --yes-place-a-real-order` first")
    require_preflight(request.preflight_file, grant.account_fingerprint, grant.payload.config_hash, now, max_age,
                      rest_url=request.rest.base_url, seal_key=preflight_key(grant.credentials.secret_key))
    settings = request.broker or broker_settings_for(request.config)
    if settings.symbol != grant.payload.symbol:
        raise ValueError(f"broker symbol {settings.symbol} differs from the opt-in's {grant.payload.symbol}")
    broker, events = await open_live_broker(grant.credentials, settings, request.rest, now, state=request.state,
                                            private_ws_url=request.private_ws_url, last_price=request.last_price)
    return broker, grant, events
