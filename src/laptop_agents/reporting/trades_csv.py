"""trades.csv: one row per closed trade, exact decimal strings (no float rounding)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from laptop_agents.core.models import Trade, utc_iso

COLUMNS = [
    "trade_id", "entry_ts", "exit_ts", "side", "entry_price", "exit_price", "qty", "gross_pnl", "fees", "pnl",
    "exit_reason",
]


def write_trades_csv(path: Path, trades: Iterable[Trade]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for t in trades:
            writer.writerow([
                t.trade_id, utc_iso(t.entry_ts), utc_iso(t.exit_ts), t.side.value, t.entry_price, t.exit_price,
                t.qty, t.gross_pnl, t.fees, t.pnl, t.exit_reason,
            ])
