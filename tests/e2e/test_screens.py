"""summary.html and the live dashboard, rendered by a real browser (Debian's headless Chromium).

The equity chart must be there for a person to read: a time axis, entry/exit markers and the drawdown,
drawn as inline SVG with no external asset. The HTML is checked for its parts, then Chromium renders the
page and the screenshot's pixels are checked for the chart's colours (the line, the markers, the drawdown
area), so a chart that exists in the source but does not draw fails. Chromium missing: skipped locally,
a failure under CI=true (.ci/run installs it). LA_SCREENSHOT_DIR=<dir> keeps the PNGs for a human look.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from itertools import accumulate
from pathlib import Path

import pytest

from tests.conftest import LaEnv

FAST = ["--source", "mock", "--candle-interval", "0.01"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI=true (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium): cannot render the pages")
    return CHROMIUM


def screenshot(url: str, tmp: Path, name: str, *extra: str) -> Path:
    out = tmp / f"{name}.png"
    profile = tmp / f"chromium-{name}"
    subprocess.run(
        [need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1280,900", *extra, url],
        capture_output=True, text=True, timeout=90, check=False)
    assert out.is_file() and out.stat().st_size > 1000, f"chromium made no screenshot of {url}"
    keep = os.environ.get("LA_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    return out


def _unfilter(f: int, line: bytearray, prev: bytearray, bpp: int) -> bytearray:
    """Undo one PNG row filter (RFC 2083 6.3); the common Up filter in bulk, Sub per channel."""
    if f == 0:
        return line
    if f == 2:
        return bytearray((x + y) & 255 for x, y in zip(line, prev, strict=True))
    if f == 1:
        for c in range(bpp):
            line[c::bpp] = bytes(accumulate(line[c::bpp], lambda a, b: (a + b) & 255))
        return line
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        if f == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
            continue
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return line


def colours(png: Path) -> tuple[int, int, Counter[tuple[int, int, int]]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes): its size and a count per colour."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 3
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    counts: Counter[tuple[int, int, int]] = Counter()
    prev = bytearray(stride)
    for r in range(height):
        start = r * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prev, bpp)
        counts.update(zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=False))
        prev = line
    return width, height, counts


def count_near(counts: Counter[tuple[int, int, int]], rgb: str, tol: int = 40) -> int:
    r, g, b = (int(rgb[i:i + 2], 16) for i in (1, 3, 5))
    return sum(n for (x, y, z), n in counts.items() if abs(x - r) + abs(y - g) + abs(z - b) <= tol)


@pytest.mark.slow
def test_summary_html_equity_chart_renders(la_env: LaEnv, tmp_path: Path) -> None:
    r = la_env.run("run", "--duration", "0.05", *FAST)
    assert r.returncode == 0, r.stderr
    run_dir = la_env.latest.resolve()
    html = (run_dir / "summary.html").read_text()
    trades = len((run_dir / "trades.csv").read_text().splitlines()) - 1
    assert trades > 0
    assert "<script" not in html and not re.search(r"(src|href)=\"https?:", html), "self-contained, no script"
    assert 'class="equity-line"' in html and 'class="drawdown"' in html and "max drawdown" in html
    assert html.count('class="entry-marker"') == trades and html.count('class="exit-marker"') == trades
    assert "time (UTC)" in html and re.search(r">\d\d:\d\d:\d\d</text>", html), "a time axis with labels"
    assert 'id="max-drawdown"' in html

    png = screenshot((run_dir / "summary.html").as_uri(), tmp_path, "summary")
    w, h, px = colours(png)
    assert (w, h) == (1280, 900)
    assert count_near(px, "#2563eb") > 300, "the equity line is drawn"
    assert count_near(px, "#fecaca", 12) > 100 or "max drawdown 0.00%" in html, "the drawdown area is drawn"
    assert count_near(px, "#16a34a") + count_near(px, "#dc2626") + count_near(px, "#b91c1c") + \
        count_near(px, "#15803d") > 50, "trade markers are drawn"


@pytest.mark.slow
def test_dashboard_equity_chart_renders(la_env: LaEnv, tmp_path: Path) -> None:
    proc = la_env.start("run", "--duration", "1", "--source", "mock", "--candle-interval", "0.02", "--dashboard")
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    assert m, line
    la_env.wait_for(lambda: any(e["event"] == "ExecutionExit" for e in la_env.events()), what="a closed trade")
    png = screenshot(m.group(1) + "/", tmp_path, "dashboard", "--virtual-time-budget=3000")
    proc.terminate()
    proc.wait(timeout=30)
    w, h, px = colours(png)
    assert (w, h) == (1280, 900)
    assert count_near(px, "#3b82f6") > 300, "the equity line is drawn"
    assert count_near(px, "#22c55e") + count_near(px, "#ef4444") > 50, "entry/exit markers are drawn"
    assert count_near(px, "#7f1d1d", 12) > 100, "the drawdown area is drawn"
