"""A stand-alone mock of the Bitunix futures exchange: REST, WebSocket, fault injection and a ledger.

Written from ``/work/shared/reference/bitunix-api.md`` alone and sharing no code with our Bitunix client,
so a client bug cannot be mirrored here and hidden. Nothing in this package imports from other parts of
``laptop_agents``.

Entry points
  * ``python -m laptop_agents.mock_exchange --port 0 [flags]`` (:mod:`.cli`)
  * :class:`MockExchange`: ``async with MockExchange(seed=7) as ex`` in async code
  * :func:`running_mock_exchange`: a context manager running it in a background thread for sync tests

Modules, one job each: :mod:`.config` (options), :mod:`.clock` (wall and market clocks), :mod:`.auth`
(signatures), :mod:`.pricepath` and :mod:`.klines` (the seeded market), :mod:`.market` (market views),
:mod:`.models` and :mod:`.engine` (accounts, orders, matching), :mod:`.ratelimit`, :mod:`.faults`,
:mod:`.ledger`, :mod:`.wire` (JSON shapes), :mod:`.parsing`, :mod:`.rest`, :mod:`.ws`, :mod:`.admin`, :mod:`.middleware`,
:mod:`.server` (wiring and lifecycle), :mod:`.testing`, :mod:`.cli`.
"""

from .config import AccountConfig, MockExchangeConfig, SymbolSpec
from .faults import FaultSettings
from .server import MockExchange
from .testing import AdminClient, MockExchangeHandle, running_mock_exchange

__all__ = [
    "AccountConfig",
    "AdminClient",
    "FaultSettings",
    "MockExchange",
    "MockExchangeConfig",
    "MockExchangeHandle",
    "SymbolSpec",
    "running_mock_exchange",
]
