"""Helpers shared by the benchmark modules (scratch installs, `la` command lines, waiting, percentiles)."""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LA = [sys.executable, "-m", "laptop_agents"]


def scratch() -> Path:
    """A temp directory holding a copy of config/ (its own workspace goes in .workspace)."""
    root = Path(tempfile.mkdtemp(prefix="la-bench-"))
    shutil.copytree(REPO / "config", root / "config")
    return root


def la_cmd(root: Path, *args: str) -> list[str]:
    return [*LA, *args, "--workspace", str(root / ".workspace"), "--config-dir", str(root / "config")]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, poll: float = 0.002, what: str = "condition") -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(poll)
    raise TimeoutError(f"benchmark condition not reached in {timeout}s: {what}")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]
