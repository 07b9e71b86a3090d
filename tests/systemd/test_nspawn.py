"""The paper service under a real systemd (PID 1 in a debootstrapped Debian booted by `systemd-nspawn -b`).

Installed by `ops/install --no-start` as an operator would, configured through its environment file, then:
`systemctl start` returns once READY=1 arrived and STATUS= reads well; journald has the logs; the kill switch
halts it in place (still active, STATUS=halted, /readyz 503) and removing it resumes; a frozen process
(`kill -STOP`) is killed by systemd's watchdog and restarted, READY again; `systemctl stop` with a position open
leaves it flat. Root, systemd-container and debootstrap are required (CI=true: missing ones fail, not skip).

WatchdogSec is cut to 6 s by a drop-in (the shipped unit says 60 s; the mechanism is the same) so the test
does not wait a minute; everything else is the shipped unit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO
from tests.service.conftest import skip_or_fail, wait_until
from tests.systemd.nspawn import Machine, booted, rootfs, wheelhouse

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # boots a container: alone, after the parallel phase

UNIT = "laptop-agents"
STATE = "/var/lib/laptop-agents-paper"
MEASURED: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except OSError:
        return 0, {}


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    if os.geteuid() != 0:
        skip_or_fail("systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} not installed (apt-get install systemd-container debootstrap; .ci/run does)")
    started = time.monotonic()
    root, built_root = rootfs()
    wheels, built_wheels = wheelhouse(REPO)
    MEASURED["rootfs"] = f"{'built' if built_root else 'cached'}; wheels {'built' if built_wheels else 'cached'}"
    MEASURED["prepare_sec"] = f"{time.monotonic() - started:.1f}"
    workdir = tmp_path_factory.mktemp("nspawn")
    boot = time.monotonic()
    with booted(root, {REPO: "/src", wheels: "/wheels"}, workdir) as m:
        MEASURED["boot_sec"] = f"{time.monotonic() - boot:.1f}"
        yield m
    print(f"\nnspawn costs: {MEASURED}")


def test_real_systemd_start_ready_journal_kill_switch_watchdog_and_stop_flat(machine: Machine) -> None:
    m = machine
    t0 = time.monotonic()
    # ---- install as an operator would, without starting; pip from the host-built wheelhouse (no network inside)
    install = m.run("/src/ops/install", "--no-start", timeout=600,
                    env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    assert "enabled, not started" in install.stdout
    assert m.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    assert m.run("systemctl", "is-active", UNIT).stdout.strip() == "inactive"
    MEASURED["install_sec"] = f"{time.monotonic() - t0:.1f}"

    # ---- configure through the environment file: offline mock data, a free port; positions stay open
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    m.sh(f"""set -e
cat > /etc/laptop-agents/laptop-agents.env <<EOF
LA_SOURCE=mock
LA_SERVE_OPTS=--candle-interval 0.05
LA_HTTP_PORT={port}
EOF
python3 - <<'EOF'
import json
p = "/etc/laptop-agents/strategies/default.json"
d = json.load(open(p))
d["exits"].update(stop_atr_mult=20, take_profit_r=20, max_hold_candles=0)
json.dump(d, open(p, "w"), indent=2)
EOF
mkdir -p /etc/systemd/system/{UNIT}.service.d
printf '[Service]\\nWatchdogSec=6\\nRestartSec=1\\n' > /etc/systemd/system/{UNIT}.service.d/test.conf
systemctl daemon-reload""")

    # ---- start → READY (systemctl start returns only then) and a readable STATUS=
    t = time.monotonic()
    start = m.run("systemctl", "start", UNIT, timeout=150)
    assert start.returncode == 0, start.stderr + m.run("journalctl", "-u", UNIT, "--no-pager", "-n", "50").stdout
    MEASURED["start_to_ready_sec"] = f"{time.monotonic() - t:.1f}"
    props = m.show(UNIT, "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["StatusText"].startswith("trading: paper mode, mock BTCUSDT"), props
    first_pid = props["MainPID"]
    wait_until(lambda: _get(url + "/readyz")[0] == 200, 30, "ready on the env file's port")
    journal = m.run("journalctl", "-u", UNIT, "--no-pager").stdout
    assert "session" in journal and "started: paper, source mock" in journal, journal[-2000:]

    # ---- kill switch: halted in place, still active; cleared: trading again
    m.run("touch", f"{STATE}/kill.txt")
    wait_until(lambda: _get(url + "/readyz")[0] == 503, 20, "/readyz 503 on the kill switch")
    assert any(p.startswith("halted: kill_switch") for p in _get(url + "/readyz")[1]["problems"])
    wait_until(lambda: m.show(UNIT, "StatusText")["StatusText"].startswith("halted:"), 20, "STATUS=halted")
    props = m.show(UNIT, "ActiveState", "MainPID")
    assert props == {"ActiveState": "active", "MainPID": first_pid}, "halted in place: same process, still active"
    assert _get(url + "/status")[1]["position"] is None
    m.run("rm", "-f", f"{STATE}/kill.txt")
    wait_until(lambda: _get(url + "/readyz")[0] == 200, 20, "ready again once kill.txt is gone")

    # ---- watchdog: freeze the process; systemd kills it (SIGABRT) and restarts it, READY again
    wait_until(lambda: _get(url + "/status")[1].get("position") is not None, 60, "a position open before the freeze")
    t = time.monotonic()
    m.run("bash", "-c", f"kill -STOP {first_pid}")
    wait_until(lambda: m.show(UNIT, "NRestarts")["NRestarts"] != "0", 60, "a watchdog restart", interval=0.5)
    wait_until(lambda: m.show(UNIT, "ActiveState")["ActiveState"] == "active"
               and m.show(UNIT, "MainPID")["MainPID"] not in ("0", first_pid)
               and _get(url + "/healthz")[0] == 200, 60, "running again after the restart", interval=0.5)
    MEASURED["freeze_to_running_again_sec"] = f"{time.monotonic() - t:.1f}"
    journal = m.run("journalctl", "-u", UNIT, "--no-pager").stdout
    assert "Watchdog timeout" in journal, journal[-3000:]
    status = _get(url + "/status")[1]
    assert status["position"] is not None, "the open position was restored from the state file after the restart"

    # ---- stop with a position open: flat, exit 0
    t = time.monotonic()
    stop = m.run("systemctl", "stop", UNIT, timeout=150)
    assert stop.returncode == 0, stop.stderr
    MEASURED["stop_sec"] = f"{time.monotonic() - t:.1f}"
    props = m.show(UNIT, "ActiveState", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "ExecMainStatus": "0"}, props
    state = json.loads(m.run("cat", f"{STATE}/paper/async_broker_state.json").stdout)
    assert state["positions"] == [], state["positions"]
    end = json.loads(m.run("tail", "-n", "1", f"{STATE}/runs/latest/events.jsonl").stdout)
    assert end["event"] == "SessionEnd" and end["stopped_reason"] == "sigterm" and end["open_position"] is False
    MEASURED["test_sec"] = f"{time.monotonic() - t0:.1f}"
