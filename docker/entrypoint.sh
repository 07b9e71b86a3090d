#!/bin/sh
# Entrypoint of the laptop-agents image (runs under tini as PID 1; `exec` so `la` receives SIGTERM directly).
#   paper [ARGS]           la serve: paper trading; data source from $LA_SOURCE (bitunix, the default, or mock),
#                          Bitunix URLs from $LA_BITUNIX__REST_URL / $LA_BITUNIX__WS_URL; state in $LA_WORKSPACE
#   live [ARGS]            la serve --live (real orders, behind the signed opt-in) with its workspace on the live
#                          volume /var/lib/laptop-agents/live; refuses (exit 2) without opt-in and credentials
#   mock-exchange [ARGS]   la mock-exchange on 127.0.0.1:$LA_MOCK_EXCHANGE_PORT (default 8555)
#   la ARGS | SUBCOMMAND   any other `la` command (doctor, status, audit, ...); anything else is executed as is
set -eu

# Register this service's endpoint for the compose Prometheus (docker/prometheus/prometheus.yml) when
# LA_SCRAPE_TARGET (host:port as Prometheus reaches it) and LA_SCRAPE_NAME are set and the targets volume is
# mounted; written atomically, once per start. Without them (plain `docker run`) nothing is written.
register_scrape_target() {
  dir="${LA_SCRAPE_TARGETS_DIR:-/var/lib/laptop-agents/targets}"
  [ -n "${LA_SCRAPE_TARGET:-}" ] && [ -n "${LA_SCRAPE_NAME:-}" ] && [ -d "$dir" ] && [ -w "$dir" ] || return 0
  printf '[{"targets": ["%s"], "labels": {"service": "%s"}}]\n' "$LA_SCRAPE_TARGET" "$LA_SCRAPE_NAME" \
    > "$dir/.$LA_SCRAPE_NAME.json.tmp" && chmod 0644 "$dir/.$LA_SCRAPE_NAME.json.tmp" \
    && mv -f "$dir/.$LA_SCRAPE_NAME.json.tmp" "$dir/$LA_SCRAPE_NAME.json" \
    || echo "la-entrypoint: could not register $LA_SCRAPE_TARGET for Prometheus in $dir" >&2
}

case "${1:-paper}" in
  paper)
    [ "$#" -gt 0 ] && shift
    register_scrape_target
    exec la serve --source "${LA_SOURCE:-bitunix}" "$@"
    ;;
  live)
    shift
    export LA_WORKSPACE="${LA_LIVE_WORKSPACE:-/var/lib/laptop-agents/live}"
    register_scrape_target
    exec la serve --live "$@"
    ;;
  mock-exchange)
    shift
    exec la mock-exchange --host 127.0.0.1 --port "${LA_MOCK_EXCHANGE_PORT:-8555}" "$@"
    ;;
  la)
    shift
    exec la "$@"
    ;;
  -*)
    register_scrape_target
    exec la serve --source "${LA_SOURCE:-bitunix}" "$@"
    ;;
  *)
    if la "$1" --help >/dev/null 2>&1; then
      exec la "$@"
    fi
    exec "$@"
    ;;
esac
