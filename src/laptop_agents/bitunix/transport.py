"""One Bitunix HTTP request, done safely.

Per request: circuit-breaker admission → client-side rate limit for the
endpoint group → sign (fresh nonce and timestamp per attempt) → send exactly
the signed bytes → parse the envelope into ``data`` or a typed error. Around
that, a retry loop whose scope depends on how safe a resend is
(:class:`RetryMode`).

Two exceptions keep a trading service safe when the exchange wobbles:

* **Exits are never paused by the circuit breaker.** Inside :func:`exit_path` (closing, cancelling, verifying
  flat, booking an exit) requests skip breaker admission: the breaker protects the exchange from our entries,
  it must never leave a position open. Their outcomes still feed the breaker.
* **Exchange time.** Every answer's ``Date`` header feeds a :class:`ServerClock`; signatures use the local
  clock plus its offset, and a signed request rejected for its signature/timestamp (10007) is re-signed and
  sent once more (the rejection's own ``Date`` has already re-synced the offset after a clock step).

Nothing here knows about individual endpoints; ``rest.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import aiohttp

from laptop_agents.bitunix.errors import (
    AuthError,
    BitunixError,
    ExchangeUnavailableError,
    MalformedMessage,
    RateLimitError,
    TransportError,
    error_from_code,
)
from laptop_agents.bitunix.schemas import decode_json
from laptop_agents.bitunix.server_clock import ServerClock, parse_http_date_ms
from laptop_agents.bitunix.signing import (
    encode_body,
    new_nonce,
    normalize_params,
    signed_headers,
)
from laptop_agents.core.secrets_mask import redact
from laptop_agents.resilience.circuit import CircuitBreaker, CircuitOpenError, CircuitState
from laptop_agents.resilience.rate_limiter import AsyncRateLimiter, RateLimit
from laptop_agents.resilience.retry import RetryPolicy, retry_async
from laptop_agents.security.credentials import Credentials

log = logging.getLogger("laptop_agents.bitunix")

DEFAULT_BASE_URL = "https://fapi.bitunix.com"
SIGNATURE_ERROR_CODE = 10007

_EXIT_PATH: contextvars.ContextVar[bool] = contextvars.ContextVar("bitunix_exit_path", default=False)


@contextlib.contextmanager
def exit_path() -> Iterator[None]:
    """Requests made inside (this task and tasks it starts) bypass the API circuit breaker: exits always go."""
    token = _EXIT_PATH.set(True)
    try:
        yield
    finally:
        _EXIT_PATH.reset(token)


def on_exit_path() -> bool:
    return _EXIT_PATH.get()


class EndpointGroup(str, Enum):
    """Endpoints sharing one exchange rate limit."""

    MARKET = "market"
    QUERY = "query"
    PLACE_ORDER = "place_order"
    BATCH_ORDER = "batch_order"
    CANCEL = "cancel"
    FLASH_CLOSE = "flash_close"
    """flash_close_position and close_all_position (⚠ 5/s per the page's note)."""
    TPSL = "tpsl"
    """tpsl/* (place, modify, cancel, pending; 10/s per UID on each docs page)."""


DOCUMENTED_RATE_LIMITS: Mapping[EndpointGroup, RateLimit] = {
    EndpointGroup.MARKET: RateLimit(10.0),
    EndpointGroup.QUERY: RateLimit(10.0),
    EndpointGroup.PLACE_ORDER: RateLimit(10.0),
    EndpointGroup.BATCH_ORDER: RateLimit(5.0),
    EndpointGroup.CANCEL: RateLimit(5.0),
    EndpointGroup.FLASH_CLOSE: RateLimit(5.0),
    EndpointGroup.TPSL: RateLimit(10.0),
}
"""Requests per second from the API docs; burst 1 spaces calls evenly because
the exchange's counting window is undocumented."""


class RetryMode(Enum):
    """How safe it is to send a request again after a retryable failure."""

    IDEMPOTENT = "idempotent"
    """Any retryable failure may be retried (reads, set-to-value writes, order
    placement carrying a clientId)."""

    UNDELIVERED_ONLY = "undelivered_only"
    """Retry only when the request certainly had no effect (refused by the
    exchange's rate limiter, connection never established)."""

    NEVER = "never"


@dataclass(frozen=True, slots=True)
class RestConfig:
    base_url: str = DEFAULT_BASE_URL
    timeout_sec: float = 10.0
    retry: RetryPolicy = RetryPolicy(max_attempts=4, base_delay_sec=0.25, max_delay_sec=4.0)
    rate_limits: Mapping[EndpointGroup, RateLimit] = field(
        default_factory=lambda: dict(DOCUMENTED_RATE_LIMITS)
    )
    rate_headroom: float = 0.9
    """Pace at this fraction of ``rate_limits``: requests paced exactly at the
    documented rate can still arrive bunched (network jitter) and trip the
    exchange's window; 10 % headroom avoids that at little cost."""
    circuit_failure_threshold: int = 5
    circuit_reset_timeout_sec: float = 30.0
    circuit_half_open_max_calls: int = 1
    language: str | None = "en-US"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.timeout_sec <= 0:
            raise ValueError("timeout_sec must be > 0")
        if not 0 < self.rate_headroom <= 1:
            raise ValueError("rate_headroom must be in (0, 1]")
        missing = set(EndpointGroup) - set(self.rate_limits)
        if missing:
            raise ValueError(f"rate_limits lacks groups: {sorted(g.value for g in missing)}")


@dataclass(slots=True)
class TransportStats:
    """Counters for metrics; the rate limiter keeps its own per-group wait stats."""

    attempts: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    circuit_rejections: int = 0
    circuit_bypassed: int = 0
    """Exit-path requests sent while the circuit was not closed."""
    signature_retries: int = 0
    session_resets: int = 0


class BitunixTransport:
    """Signed/unsigned requests with rate limiting, retries and a circuit breaker."""

    def __init__(
        self,
        config: RestConfig | None = None,
        credentials: Credentials | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rnd: Callable[[], float] = random.random,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        self.config = config or RestConfig()
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._wall_clock_ms = wall_clock_ms
        self._sleep = sleep
        self._rnd = rnd
        self._nonce_factory = nonce_factory
        self._base_url = self.config.base_url.rstrip("/")
        headroom = self.config.rate_headroom
        self.limiter: AsyncRateLimiter[EndpointGroup] = AsyncRateLimiter(
            {
                group: RateLimit(limit.rate_per_sec * headroom, limit.burst)
                for group, limit in self.config.rate_limits.items()
            },
            clock=monotonic,
            sleep=sleep,
        )
        self.breaker = CircuitBreaker(
            "bitunix-rest",
            failure_threshold=self.config.circuit_failure_threshold,
            reset_timeout_sec=self.config.circuit_reset_timeout_sec,
            half_open_max_calls=self.config.circuit_half_open_max_calls,
            clock=monotonic,
            on_state_change=self._log_circuit,
        )
        self.stats = TransportStats()
        self.clock = ServerClock()
        """The exchange's clock as seen from its answers' ``Date`` headers; signatures use its offset."""

    def exchange_time_ms(self) -> int:
        """The local wall clock corrected by the offset to the exchange's clock."""
        return self._wall_clock_ms() + self.clock.offset_ms

    async def reset_session(self) -> None:
        """Drop the pooled HTTP connections (a fresh session on the next request): for stop paths that keep
        failing on transport errors, in case the pool holds dead connections."""
        if self._owns_session and self._session is not None and not self._session.closed:
            self.stats.session_resets += 1
            await self._session.close()
            self._session = None

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the HTTP session if this transport created it; idempotent and final."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        # A RuntimeError, not a BitunixError: using a closed client is a
        # lifecycle bug, and it must not be retried (nor reopen a session).
        if self._closed:
            raise RuntimeError("the Bitunix REST client is closed")
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise RuntimeError("the injected aiohttp session is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        group: EndpointGroup,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        signed: bool = False,
        retry_mode: RetryMode = RetryMode.IDEMPOTENT,
    ) -> Any:
        """Send one logical request (possibly several attempts); return ``data``."""
        if self._closed:
            raise RuntimeError("the Bitunix REST client is closed")
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"unsupported method {method}")
        if signed and self._credentials is None:
            raise AuthError("this request needs API credentials", context=f"{method} {path}")
        query = normalize_params(params)
        body_text = encode_body(body if body is not None else {}) if method == "POST" else ""
        context = f"{method} {path}"

        async def attempt() -> Any:
            signed_with = self.clock.offset_ms
            try:
                return await self._guarded_attempt(method, path, query, body_text, group, signed, context)
            except AuthError as exc:
                if not signed or exc.code != SIGNATURE_ERROR_CODE or self.clock.offset_ms == signed_with:
                    raise  # the clock did not move: a wrong key/secret, not a timestamp; never hammer
                # the exchange refused our timestamp/signature: the rejection's Date header has re-synced the
                # clock offset (a step on either side); sign again once with it. Refused = not executed: safe.
                self.stats.signature_retries += 1
                log.warning("bitunix %s: signature/timestamp rejected (%s); clock offset now %d ms, signing again",
                            context, exc, self.clock.offset_ms)
                return await self._guarded_attempt(method, path, query, body_text, group, signed, context)

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, BitunixError) or not exc.retryable:
                return False
            if retry_mode is RetryMode.IDEMPOTENT:
                return True
            if retry_mode is RetryMode.UNDELIVERED_ONLY:
                return not exc.maybe_delivered
            return False

        def on_retry(retry_number: int, exc: BaseException, delay: float) -> None:
            self.stats.retries += 1
            log.warning(
                "bitunix %s failed (%s: %s); retry %d in %.2fs",
                context,
                type(exc).__name__,
                exc,
                retry_number,
                delay,
            )

        return await retry_async(
            attempt,
            policy=self.config.retry,
            is_retryable=should_retry,
            sleep=self._sleep,
            rnd=self._rnd,
            on_retry=on_retry,
        )

    async def _guarded_attempt(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body_text: str,
        group: EndpointGroup,
        signed: bool,
        context: str,
    ) -> Any:
        bypass = on_exit_path()
        if bypass:
            if self.breaker.state is not CircuitState.CLOSED:
                self.stats.circuit_bypassed += 1
        else:
            try:
                self.breaker.acquire()
            except CircuitOpenError as exc:
                self.stats.circuit_rejections += 1
                raise ExchangeUnavailableError(
                    "API circuit breaker is open", retry_after_sec=exc.retry_after_sec, context=context
                ) from None
        try:
            await self.limiter.acquire(group)
            self.stats.attempts += 1
            data = await self._send(method, path, query, body_text, signed, context)
        except BitunixError as exc:
            self.stats.errors[type(exc).__name__] += 1
            if exc.counts_as_api_failure:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # the API answered coherently
            raise
        except BaseException:
            if not bypass:
                self.breaker.release()
            raise
        self.breaker.record_success()
        return data

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body_text: str,
        signed: bool,
        context: str,
    ) -> Any:
        headers: dict[str, str]
        if signed:
            assert self._credentials is not None
            headers = signed_headers(
                api_key=self._credentials.api_key,
                secret_key=self._credentials.secret_key,
                nonce=self._nonce_factory(),
                timestamp_ms=self.exchange_time_ms(),
                params=query,
                body_text=body_text,
                language=self.config.language,
            )
        else:
            headers = {"language": self.config.language} if self.config.language else {}
            if method == "POST":
                headers["Content-Type"] = "application/json"
        url = self._base_url + path
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_sec)
        sent_ms = self._wall_clock_ms()
        try:
            async with self._get_session().request(
                method,
                url,
                params=query or None,
                data=body_text.encode("utf-8") if method == "POST" else None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                server_ms = parse_http_date_ms(resp.headers.get("Date"))
        except TimeoutError:
            raise TransportError("request timed out", context=context) from None
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(
                f"cannot connect: {type(exc).__name__}", context=context, maybe_delivered=False
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"HTTP client error: {type(exc).__name__}", context=context) from None
        if server_ms is not None:
            self.clock.observe(server_ms, sent_ms, self._wall_clock_ms())
        return self._parse_envelope(status, raw, context)

    def _parse_envelope(self, status: int, raw: bytes, context: str) -> Any:
        if status == 429:
            raise RateLimitError("HTTP 429 Too Many Requests", context=context)
        if status != 200:
            raise TransportError(f"HTTP {status}", status=status, context=context)
        try:
            payload = decode_json(raw, "rest.envelope")
        except MalformedMessage:
            raise TransportError("response is not valid JSON", status=status, context=context) from None
        if not isinstance(payload, Mapping) or "code" not in payload:
            raise TransportError("response is not a Bitunix envelope", status=status, context=context)
        code = payload.get("code")
        try:
            code_int = int(code)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise TransportError(
                "envelope code is not an integer", status=status, context=context
            ) from None
        if code_int != 0:
            msg = payload.get("msg")
            text = msg if isinstance(msg, str) else ""
            raise error_from_code(code_int, self._scrub(text[:200]), context=context)
        return payload.get("data")

    def _scrub(self, text: str) -> str:
        return redact(text, self._credentials.secrets()) if self._credentials else text

    def _log_circuit(self, old: Any, new: Any) -> None:
        log.warning("bitunix REST circuit breaker %s -> %s", old.value, new.value)
