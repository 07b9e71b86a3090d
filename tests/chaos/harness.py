"""One chaos case: real `la run --live` processes against the mock exchange, faults at chosen points, and the
verdict from the exchange's ledger across every run of the case.

A case starts sessions exactly like tests/live (encrypted credentials, signed opt-in, `la run --mode
live-session --live` over 127.0.0.1), kills them with SIGKILL at moments the mock pins down (a parked
request, see ``laptop_agents.mock_exchange.holds``), restarts, and finally asserts the invariants every case
shares (:meth:`Chaos.assert_invariants`): no clientId used for two orders, every ledger fill in trades.csv and
events.jsonl, nothing booked twice, the account flat, wallet = start + sum of booked trade PnL, and no exit 1
or traceback in any run that was not killed by the test.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from laptop_agents.mock_exchange.ledger_audit import AuditResult, audit, read_runs
from laptop_agents.mock_exchange.testing import MockExchangeHandle
from tests.conftest import LaEnv
from tests.live.conftest import KEY
from tests.live.test_live_session_e2e import live_args, setup_live

ENTRY = ["trade/place_order"]
CLOSE_PATHS = ["trade/place_order", "trade/close_all_position", "trade/cancel_all_orders",
               "trade/flash_close_position"]


@dataclass(frozen=True)
class Route:
    """How an installation addresses the exchange (what setup_live/live_args read from a mock handle)."""

    rest_url: str
    public_ws_url: str
    private_ws_url: str

    @classmethod
    def via(cls, mx: MockExchangeHandle, host: str) -> Route:
        def swap(url: str) -> str:
            return url.replace("127.0.0.1", host, 1)

        return cls(swap(mx.rest_url), swap(mx.public_ws_url), swap(mx.private_ws_url))


@dataclass
class RunOutcome:
    what: str
    returncode: int
    stderr: str
    killed: bool = False


@dataclass
class Chaos:
    """A chaos case on one workspace (more workspaces for the second-instance case) and the shared exchange."""

    la_env: LaEnv
    mx: MockExchangeHandle
    outcomes: list[RunOutcome] = field(default_factory=list)
    extra_envs: list[LaEnv] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)

    def setup(self, strategy: str = "hold", session: dict[str, Any] | None = None) -> None:
        """``hold``: positions stay open (far TP/SL, no time exit); ``trade``: round trips every few bars (time
        exit after 4 bars), so later orders carry later clientIds. Then the signed opt-in."""
        if strategy == "hold":
            self.la_env.hold_positions()
        elif strategy == "trade":
            self.la_env.edit_json("strategies/default.json", exits={"stop_atr_mult": 3, "take_profit_r": 2,
                                                                    "max_hold_candles": 4}, cooldown_candles=1)
        if session:
            self.la_env.edit_yaml("settings.yaml", session=session)
        setup_live(self.la_env, self.mx)  # last: the opt-in binds the config hash

    def other_workspace(self, name: str, *, same_host: bool = True) -> LaEnv:
        """Another installation on the same account (its own config, workspace and opt-in). ``same_host``:
        it shares the case's lock directory and reaches the exchange by the same address. Otherwise it stands
        for another machine: its own lock directory, and the exchange reached as ``localhost`` (the same
        exchange and account, but an address no host-wide lock of this machine keys on)."""
        root = self.la_env.root / name
        shutil.copytree(self.la_env.config_dir, root / "config")
        env = LaEnv(root=root, workspace=root / ".workspace", config_dir=root / "config")
        env.env["LA_LOCK_DIR"] = self.la_env.env["LA_LOCK_DIR"] if same_host else str(root / "host-locks")
        route = self.mx if same_host else Route.via(self.mx, "localhost")
        setup_live(env, route)  # type: ignore[arg-type]
        self.routes[str(env.root)] = route
        self.extra_envs.append(env)
        return env

    def _route(self, env: LaEnv | None) -> Any:
        return self.mx if env is None else self.routes.get(str(env.root), self.mx)

    def start(self, minutes: str = "5", env: LaEnv | None = None) -> subprocess.Popen[str]:
        return (env or self.la_env).start(*live_args(self._route(env), minutes))

    def kill9(self, proc: subprocess.Popen[str], what: str) -> None:
        """SIGKILL, reap, keep its stderr (a killed run is allowed its -9, nothing else)."""
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=30)
        self.outcomes.append(RunOutcome(what, proc.returncode, err, killed=True))

    def kill_at_hold(self, proc: subprocess.Popen[str], what: str, *, action: str = "drop",
                     timeout: float = 60) -> dict[str, Any]:
        """Wait until the mock parks the armed request, kill -9 the session there, then release the request."""
        try:
            held = self.mx.admin.wait_hold(timeout)
        except Exception:
            self.finish(proc, what + " (no hold)", timeout=5, kill=True)
            raise
        self.kill9(proc, what)
        self.mx.admin.release_holds(action)
        return held

    def finish(self, proc: subprocess.Popen[str], what: str, timeout: float = 120, kill: bool = False) -> RunOutcome:
        if kill and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=timeout)
        outcome = RunOutcome(what, proc.returncode, err, killed=kill)
        self.outcomes.append(outcome)
        return outcome

    def run(self, minutes: str = "0.1", what: str = "restart", env: LaEnv | None = None,
            timeout: float = 120) -> RunOutcome:
        result = (env or self.la_env).run(*live_args(self._route(env), minutes), timeout=timeout)
        outcome = RunOutcome(what, result.returncode, result.stderr)
        self.outcomes.append(outcome)
        return outcome

    def fault_after_entry_fills(self, **faults: Any) -> dict[str, Any]:
        """Set ``faults`` at the moment the exchange has filled the first entry and before la reads the answer:
        the entry's place_order answer is parked (phase after), the faults set, then the answer released. So
        the faults hit the follow-up queries of a filled entry, not the checks before sending it."""
        self.mx.admin.set_faults(rest_hold_next=1, rest_hold_skip=0, rest_hold_paths=ENTRY, rest_hold_phase="after")
        held = self.mx.admin.wait_hold(90)
        self.mx.admin.set_faults(**faults)
        self.mx.admin.release_holds("proceed")
        return held

    @staticmethod
    def wait(predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll until ``predicate`` holds; False on timeout (the ledger verdict then says what went wrong)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def audit(self) -> AuditResult:
        ledger = self.mx.admin.ledger(type=["order_request", "fill"], account=KEY)
        workspaces = [self.la_env.workspace, *(e.workspace for e in self.extra_envs)]
        return audit(ledger["events"], ledger["accounts"][KEY], read_runs(*workspaces))

    def assert_invariants(self, *, allowed_codes: tuple[int, ...] = (0,)) -> AuditResult:
        """The ledger verdict plus the process verdict; returns the audit for case-specific checks."""
        for o in self.outcomes:
            if o.killed:
                continue
            assert o.returncode in allowed_codes, f"{o.what}: exit {o.returncode}\n{o.stderr[-3000:]}"
            assert "Traceback" not in o.stderr, f"{o.what}: traceback\n{o.stderr[-3000:]}"
        result = self.audit()
        assert result.fills > 0, "the case never traded: it proves nothing"
        assert result.ok, "; ".join(result.problems()) + "\n" + self.describe()
        return result

    def describe(self) -> str:
        return "\n".join(f"--- {o.what}: exit {o.returncode}{' (killed by the test)' if o.killed else ''}\n"
                         f"{o.stderr[-1500:]}" for o in self.outcomes)
