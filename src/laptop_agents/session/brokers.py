"""Where a session's broker comes from: paper (the default) or live (BitunixBroker behind the signed gate).

The runner is broker-agnostic: a factory tells it its workspace mode (``paper`` or
``live``: separate directories, locks and files), loads the persisted broker state
before the loop starts, opens the broker inside the loop, and closes it on every
stop path. ``account`` is what status, metrics and the RunRecorder read (equity,
position, trades, accounting); ``broker`` is what the pipeline trades through.

Live: :func:`~laptop_agents.session.live_gate.start_live_broker` runs the signed
opt-in gate and the preflight record check before any exchange client exists, so a
refused start sends no request.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from laptop_agents.core.config_models import AppConfig
from laptop_agents.core.errors import StateError
from laptop_agents.core.events import Event
from laptop_agents.core.models import Trade, utc_iso
from laptop_agents.core.state import StateManager
from laptop_agents.core.state_schema import StateInvalid, check_live_state, state_error
from laptop_agents.execution.broker import Broker, PaperBrokerPort
from laptop_agents.paper.broker import PaperBroker
from laptop_agents.session.lock import AccountKey
from laptop_agents.session.state_store import BROKER_KIND
from laptop_agents.session.workspace import BROKER_STATE_NAME, Mode, Workspace

log = logging.getLogger("laptop_agents.session")

Closed = tuple[list[Event], Trade | None]
EXPIRY_WARNING = timedelta(hours=24)


class BrokerFactory(Protocol):
    mode: Mode
    state_kind: str

    @property
    def account(self) -> Any:
        """equity, starting_equity, position, trades, last_price, mark_to_market(), verify_accounting()."""

    def load(self, state: StateManager, workspace: Workspace) -> bool:
        """Before the loop, under the lock: read and verify persisted state (StateError). True if restored."""

    async def open(self, now: datetime) -> tuple[Broker, list[Event]]:
        """In the loop: the broker and its start-up events (published once the journal listens)."""

    async def shutdown(self, reason: str, now: datetime) -> Closed:
        """After close_all on every stop path: release the broker (live: cancel all, close all, verify flat)."""

    def check(self, now: datetime) -> tuple[str, str] | None:
        """Every control tick: a (stop reason, detail) if the broker can no longer trade."""

    def account_key(self, workspace: Workspace) -> AccountKey | None:
        """The account this session trades (the host-wide lock's key), or None if it cannot be named yet."""


class PaperBrokerFactory:
    mode: Mode = "paper"
    state_kind = BROKER_KIND

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.paper: PaperBroker | None = None

    @property
    def account(self) -> PaperBroker:
        assert self.paper is not None, "load() first"
        return self.paper

    def load(self, state: StateManager, workspace: Workspace) -> bool:
        paper_settings = self.config.settings.paper
        symbol = self.config.strategy.symbol
        data = state.load(BROKER_STATE_NAME, BROKER_KIND)
        if data is None:
            self.paper = PaperBroker(paper_settings, symbol=symbol)
            return False
        try:
            paper = PaperBroker.from_state(paper_settings, data)
        except StateInvalid as exc:
            raise state_error(workspace.broker_state_path, exc) from None
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise StateError(
                f"corrupted state file {workspace.broker_state_path}: {exc!s}; "
                "move it aside or restore a backup (`la clean --all` starts from scratch); it was left untouched"
            ) from None
        if paper.symbol != symbol:
            raise StateError(
                f"state file {workspace.broker_state_path} is for {paper.symbol}, config trades {symbol}; "
                "use another workspace or `la clean --all`"
            )
        self.paper = paper
        return True

    async def open(self, now: datetime) -> tuple[Broker, list[Event]]:
        return PaperBrokerPort(self.account), []

    def account_key(self, workspace: Workspace) -> AccountKey:
        """A paper account is its state directory: two sessions on one paper workspace are one account."""
        return AccountKey.paper(workspace.state_dir)

    async def shutdown(self, reason: str, now: datetime) -> Closed:
        return [], None

    def check(self, now: datetime) -> tuple[str, str] | None:
        return None


class LiveBrokerFactory:
    """BitunixBroker through :func:`start_live_broker`: gate → client → start-up reconciliation."""

    mode: Mode = "live"

    def __init__(self, config: AppConfig, *, flag: bool, passphrase_source: Any = None, last_price: Any = None) -> None:
        """``last_price``: the :class:`~laptop_agents.bitunix.last_price.LastPrice` the session's market data
        provider keeps current from the public ticker channel; the broker then skips the REST tickers round
        trip on entries while it is fresh. None (or a stale price) = REST, as always."""
        from laptop_agents.execution.bitunix_broker import STATE_KIND

        self.state_kind = STATE_KIND
        self.config = config
        self.flag = flag
        self.passphrase_source = passphrase_source
        self.last_price = last_price
        self.state: dict[str, Any] | None = None
        self.workspace: Workspace | None = None
        self.broker: Any = None
        self.grant: Any = None
        self._warned_expiry = False

    @property
    def account(self) -> Any:
        assert self.broker is not None, "open() first"
        return self.broker

    def account_key(self, workspace: Workspace) -> AccountKey | None:
        """The API key's fingerprint (from the credentials file's authenticated header: no passphrase, and never
        the key itself) at the exchange's host. None if the file cannot be read: the gate then refuses before
        any request, so no session trades without the lock."""
        from laptop_agents.security.credentials_file import read_header
        from laptop_agents.security.errors import SecurityError

        try:
            fingerprint = read_header(Path(self.config.settings.live.credentials_file)).fingerprint
        except (OSError, SecurityError, ValueError):
            return None
        if not fingerprint:
            return None
        return AccountKey.live(fingerprint, self.config.settings.bitunix.rest_url)

    def load(self, state: StateManager, workspace: Workspace) -> bool:
        from laptop_agents.session.live_gate import load_live_state

        self.workspace = workspace
        self.state = load_live_state(workspace)
        if self.state is not None:
            try:
                check_live_state(self.state)
            except StateInvalid as exc:
                raise state_error(workspace.broker_state_path, exc) from None
        return self.state is not None

    def _request(self) -> Any:
        from laptop_agents.session.live_gate import live_start_for

        return live_start_for(self.config, self.workspace, flag=self.flag, state=self.state,
                              passphrase_source=self.passphrase_source, last_price=self.last_price)

    async def open(self, now: datetime) -> tuple[Broker, list[Event]]:
        from laptop_agents.session.live_gate import start_live_broker

        broker, grant, events = await start_live_broker(self._request(), now=now)
        self.broker, self.grant = broker, grant
        log.warning(
            "LIVE TRADING on %s (%s): account %s, opt-in %s valid until %s", broker.symbol,
            self.config.settings.bitunix.rest_url, grant.account_fingerprint, grant.optin_path,
            utc_iso(grant.expires_at),
        )
        self.check(now)
        return broker, events

    async def shutdown(self, reason: str, now: datetime) -> Closed:
        if self.broker is None:
            return [], None
        return await self.broker.shutdown(reason, now)

    def check(self, now: datetime) -> tuple[str, str] | None:
        if self.grant is None:
            return None
        halted = getattr(self.broker, "halted", None)
        if halted:  # an order under our clientId that we did not send: stop, flatten, say why (exit 8)
            return "order_identity", halted
        expires = self.grant.expires_at
        if now >= expires:
            return "optin_expired", f"the live opt-in expired at {utc_iso(expires)}"
        if not self._warned_expiry and expires - now <= EXPIRY_WARNING:
            self._warned_expiry = True
            log.warning("the live opt-in expires at %s (in %.1f h); sign a new one to keep trading",
                        utc_iso(expires), (expires - now).total_seconds() / 3600)
        return None

