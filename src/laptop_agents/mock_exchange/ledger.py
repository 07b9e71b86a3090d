"""The ledger: an append-only record of what the exchange actually saw and did.

Tests read it (``GET /admin/ledger`` or the ``--ledger-file`` JSON lines) to prove behaviour from the
exchange's side: every order request with its outcome (including refusals and duplicate ``clientId``
attempts), every fill with fee and realized PnL, every cancellation, TP/SL and liquidation trigger,
injected fault, admin action, and the final positions and balances per account.

Record shape: ``{"seq": n, "ts": wall_ms, "marketTs": market_ms, "type": "...", ...fields}``; values are
JSON-ready (decimals as strings). Types: ``order_request``, ``request``, ``fill``, ``cancel``, ``trigger``,
``fault``, ``admin``, ``final_state``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any


class Ledger:
    """In-memory list of records, mirrored to an optional JSON-lines file (flushed per record)."""

    def __init__(
        self,
        wall_ms: Callable[[], int],
        market_ms: Callable[[], int],
        path: Path | None = None,
    ) -> None:
        self._wall_ms = wall_ms
        self._market_ms = market_ms
        self._records: list[dict[str, Any]] = []
        self._seq = 0
        self._path = path
        self._file: IO[str] | None = None

    def record(self, type_: str, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        rec = {"seq": self._seq, "ts": self._wall_ms(), "marketTs": self._market_ms(), "type": type_, **fields}
        self._records.append(rec)
        if self._path is not None:
            if self._file is None:  # opened on first use, so a never-started exchange leaves no handle open
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self._path.open("a", encoding="utf-8")
            self._file.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
            self._file.flush()
        return rec

    def records(
        self,
        types: Iterable[str] | None = None,
        account: str | None = None,
        since: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records filtered by type(s), account and ``seq > since``, in order."""
        wanted = set(types) if types else None
        return [
            r
            for r in self._records
            if (wanted is None or r["type"] in wanted)
            and (account is None or r.get("account") == account)
            and (since is None or r["seq"] > since)
        ]

    @property
    def last_seq(self) -> int:
        return self._seq

    def clear(self) -> None:
        """Forget the in-memory records (the file, if any, keeps its history; ``seq`` keeps counting)."""
        self._records.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
