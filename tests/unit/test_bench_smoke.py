"""Smoke test of the benchmark suite's exchange benchmarks (bench/): tiny counts, sane structures, no timings asserted."""

from __future__ import annotations

import pytest
from bench.__main__ import _only, _rows
from bench.frame_to_order import bench_frame_to_order
from bench.live_shutdown import bench_shutdown_live


def test_frame_to_order_measures_orders_and_ends_flat() -> None:
    result = bench_frame_to_order(orders=10, pin=False)
    assert result["orders"] == 10 - result["warmup_orders_excluded"]
    assert 0 < result["p50"] <= result["p99"] <= result["max"]
    assert set(result["by_kind_us"]) == {"entry", "close"} and result["by_kind_us"]["entry"]
    for kind in ("entry", "close"):
        assert {"parse", "decision", "sign", "write"} <= set(result["breakdown_us"][kind])
    assert result["exchange_flat_after"] is True
    assert any(name.startswith("frame → order") for name, _v, _t in _rows({"frame_to_order": result}))


@pytest.mark.slow
def test_live_shutdown_on_mock_is_flat() -> None:
    result = bench_shutdown_live(repeat=1)
    run = result["runs"][0]
    assert run["position_before"] == 1 and run["exit_code"] == 0 and run["stopped_reason"] == "sigterm"
    assert result["all_flat"] is True and result["median_ms"] > 0


def test_only_rejects_unknown_names() -> None:
    assert _only("frame_to_order,shutdown_live") == {"frame_to_order", "shutdown_live"}
    with pytest.raises(SystemExit):
        _only("nope")
