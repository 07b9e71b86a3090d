"""The venue half of a live start: one REST client, a factory for fresh ones, the private stream.

Why here and not in ``execution/live_start.py``: which objects talk to Bitunix, and how they are
built from a :class:`RestConfig` and an API key pair, is venue knowledge. The live gate, the
preflight record, the workspace and the broker stay with their owners (security/, execution/,
session/); they hand this module values (a config, credentials, a URL) and get connected parts back.
Nothing here sends a request: building a client is free, the stream connects on :meth:`LiveVenue.start_stream`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from laptop_agents.bitunix.private_stream import PrivateStream
from laptop_agents.bitunix.rest import BitunixRestClient
from laptop_agents.bitunix.transport import RestConfig
from laptop_agents.security.credentials import Credentials


@dataclass(frozen=True)
class LiveVenue:
    """The live connection's parts. ``stream`` None = fills by REST polling only."""

    client: BitunixRestClient
    client_factory: Callable[[], BitunixRestClient]
    """Builds a fresh client with the same config and key (the broker replaces a broken session with it)."""
    stream: PrivateStream | None

    async def start_stream(self) -> None:
        """Connect and log in the private stream, if any (not logged in in time: the broker polls until it is)."""
        if self.stream is not None:
            await self.stream.start()

    async def close(self) -> None:
        """Close the stream then the client; a failing stream close never leaves the client open."""
        try:
            if self.stream is not None:
                await self.stream.close()
        finally:
            await self.client.close()


def open_live_venue(rest: RestConfig, credentials: Credentials, private_ws_url: str | None) -> LiveVenue:
    """A client, its factory and (with a URL) the private stream, all on the same key; no request sent."""

    def factory() -> BitunixRestClient:
        return BitunixRestClient(rest, credentials)

    stream = PrivateStream(private_ws_url, credentials) if private_ws_url else None
    return LiveVenue(client=factory(), client_factory=factory, stream=stream)
