#!/opt/la/bin/python
"""Container healthcheck: GET a URL on this host, healthy on HTTP 2xx.

Default URL: the `la serve` endpoint's /readyz at 127.0.0.1:$LA_HTTP_PORT, so Docker's health is readiness:
healthy while it trades; unhealthy while halted in place (kill switch, breaker stop, stale data, data source
down: `la serve` stays up, flat, and says why in the printed body) or frozen. The image's start period (90 s)
covers the warm-up. `la-healthcheck live` checks liveness only (/healthz: the loop's heartbeat), for a
supervisor that should restart only a frozen process. Another URL (e.g. the mock exchange's REST API) may be
given as the only argument or in $LA_HEALTHCHECK_URL.
Standard library only: the image has no curl.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("LA_HTTP_PORT") or "9478"
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    if arg in ("ready", "live"):
        url = f"http://127.0.0.1:{port}/" + ("readyz" if arg == "ready" else "healthz")
    else:
        url = arg or os.environ.get("LA_HEALTHCHECK_URL") or f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2.5) as resp:
            ok = 200 <= resp.status < 300
            print(f"{url}: {resp.status}")
            return 0 if ok else 1
    except urllib.error.HTTPError as err:
        print(f"{url}: {err.code} {err.read(300).decode(errors='replace')}")
    except OSError as err:
        print(f"{url}: {err}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
