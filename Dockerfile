# laptop-agents: one image for the paper service (default), the mock exchange and the `la` CLI.
#   docker build --network host -t laptop-agents .        (pip needs the network while building)
#   docker run -d --network host -v la-paper:/var/lib/laptop-agents/paper laptop-agents
# Roles (docker/entrypoint.sh): paper (default), live, mock-exchange, or any `la` subcommand.
# HEALTHCHECK = readiness (/readyz) after a 90 s start period: unhealthy while `la serve` is halted in place
# (kill switch, breaker stop, stale data, data source down) or frozen; `la-healthcheck live` = liveness only.
# No secret is baked in: live credentials, passphrase and opt-in arrive at run time as Docker secrets.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/la
# dependencies first (pinned closure), so that a source change does not re-download them
COPY pyproject.toml ./
COPY docker/constraints.txt /tmp/constraints.txt
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && /opt/la/bin/pip install --no-cache-dir -r /tmp/requirements.txt -c /tmp/constraints.txt
COPY README.md ./
COPY src ./src
RUN /opt/la/bin/pip install --no-cache-dir --no-deps . \
 && /opt/la/bin/la --help >/dev/null

FROM python:3.11-slim-bookworm
# tini as PID 1 (signal forwarding, zombie reaping): the locally built base has it, the official image gets it here
RUN if ! command -v tini >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 la \
 && useradd --system --uid 10001 --gid la --home-dir /var/lib/laptop-agents --no-create-home \
        --shell /usr/sbin/nologin la \
 && mkdir -p /var/lib/laptop-agents/paper /var/lib/laptop-agents/live /var/lib/laptop-agents/targets \
 && chown -R la:la /var/lib/laptop-agents \
 && chmod 0750 /var/lib/laptop-agents/paper /var/lib/laptop-agents/live \
 && chmod 0755 /var/lib/laptop-agents/targets
COPY --from=build /opt/la /opt/la
COPY config /etc/laptop-agents
COPY docker/entrypoint.sh /usr/local/bin/la-entrypoint
COPY docker/healthcheck.py /usr/local/bin/la-healthcheck
ENV PATH=/opt/la/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LA_CONFIG_DIR=/etc/laptop-agents \
    LA_WORKSPACE=/var/lib/laptop-agents/paper \
    LA_HTTP_HOST=127.0.0.1 \
    LA_HTTP_PORT=9478
VOLUME ["/var/lib/laptop-agents/paper", "/var/lib/laptop-agents/live"]
WORKDIR /var/lib/laptop-agents
USER 10001:10001
EXPOSE 9478
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 CMD ["la-healthcheck"]
ENTRYPOINT ["tini", "--", "la-entrypoint"]
CMD ["paper"]
