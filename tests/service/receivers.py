"""Local alert receivers for tests: a JSON webhook (aiohttp) and a tiny SMTP server (asyncio), both on 127.0.0.1.

Each runs its own event loop in a thread, so tests (and the `la serve`
subprocess they drive) talk to real sockets.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class WebhookReceiver(_LoopThread):
    """Apprise `json://127.0.0.1:PORT/` target. `hold=True` keeps every request open until `release()`."""

    def __init__(self, hold: bool = False) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.started: list[float] = []
        self._hold = hold
        self._release: asyncio.Event | None = None
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def _handle(self, request: web.Request) -> web.Response:
        self.started.append(time.monotonic())
        body = await request.read()
        if self._hold:
            assert self._release is not None
            try:
                await asyncio.wait_for(self._release.wait(), timeout=60)
            except TimeoutError:
                pass
        self.received.append(json.loads(body))
        return web.json_response({"ok": True})

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def release(self) -> None:
        assert self._release is not None
        self.loop.call_soon_threadsafe(self._release.set)

    def close(self) -> None:
        if self._hold:
            self.release()
        self.call(self._runner.cleanup())
        self.stop()


class SmtpReceiver(_LoopThread):
    """Just enough SMTP (RFC 5321, no TLS, no AUTH) to accept what Apprise's `mailto://` sends."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write((line + "\r\n").encode())

        say("220 localhost test SMTP")
        mail_from, rcpts = "", []
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                cmd = raw.decode(errors="replace").strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    writer.write(b"250-localhost\r\n250 8BITMIME\r\n")
                elif verb == "MAIL":
                    mail_from, rcpts = cmd.split(":", 1)[1].strip(), []
                    say("250 OK")
                elif verb == "RCPT":
                    rcpts.append(cmd.split(":", 1)[1].strip())
                    say("250 OK")
                elif verb == "DATA":
                    say("354 End data with <CR><LF>.<CR><LF>")
                    data = bytearray()
                    while True:
                        line = await reader.readline()
                        if line in (b".\r\n", b".\n", b""):
                            break
                        data += line[1:] if line.startswith(b"..") else line
                    self.messages.append(message_from_bytes(bytes(data), policy=policy.default))  # type: ignore[arg-type]
                    self.envelopes.append((mail_from, rcpts))
                    say("250 OK queued")
                elif verb == "QUIT":
                    say("221 Bye")
                    await writer.drain()
                    break
                elif verb in ("RSET", "NOOP"):
                    say("250 OK")
                else:
                    say("502 Command not implemented")
                await writer.drain()
        finally:
            writer.close()

    def url(self, to: str = "ops@example.com") -> str:
        # Apprise: mailto://{user}@{domain}... smtp= the relay, mode= nothing but plain SMTP
        return (f"mailto://la@example.com:{self.port}?smtp=127.0.0.1&from=la@example.com&to={to}"
                "&mode=insecure&user=&pass=")

    def texts(self) -> list[str]:
        out = []
        for msg in self.messages:
            body = msg.get_body(preferencelist=("plain", "html"))
            out.append(f"{msg['subject']}\n{body.get_content() if body else ''}")
        return out

    def close(self) -> None:
        self._server.close()
        self.stop()
