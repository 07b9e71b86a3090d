#!/opt/la/bin/python
"""Container healthcheck: GET a URL on this host, healthy on HTTP 2xx.

Default URL: the `la serve` endpoint's /healthz (loop heartbeat fresh) at 127.0.0.1:$LA_HTTP_PORT.
Another URL (e.g. the mock exchange's REST API) may be given as the only argument or in $LA_HEALTHCHECK_URL.
Standard library only: the image has no curl.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("LA_HTTP_PORT") or "9478"
    url = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get("LA_HEALTHCHECK_URL") \
        or f"http://127.0.0.1:{port}/healthz"
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
