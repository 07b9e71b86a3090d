"""A paper session never loads the venue package: the runner and its composition root must not import the live
broker or the Bitunix client at module level (aiohttp and the exchange schemas cost ~150 modules, ~0.4 s to the
first candle and ~13 MB of RSS; bench/ measures those, this test pins the cause)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_session_modules_load_without_the_venue_or_aiohttp() -> None:
    code = (
        "import json, sys\n"
        "import laptop_agents.session.async_session, laptop_agents.session.run_command\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'aiohttp' or m.startswith(('aiohttp.', "
        "'laptop_agents.bitunix', 'laptop_agents.execution.bitunix')))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []
