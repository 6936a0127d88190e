"""One keep-alive HTTP/1.1 connection to an upstream, as an asyncio.Protocol fed to httptools, and
the pool of such connections per upstream origin (gateway/upstream_client.py sends requests on them).

A connection reads one answer at a time into an `Answer`: status, raw headers, then body pieces
as they arrive, waking the request that waits on it. An answer httptools refuses, or one cut short
once its first byte arrived, fails with `UpstreamProtocolError`; a connection closed before any
answer byte fails with `UpstreamConnectionError`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import cast

import httptools

from gateway.upstream import UpstreamConnectionError, UpstreamProtocolError

# Idle connections older than this are not reused (the services' uvicorn closes them after 5 s
# itself; this only bounds what a quieter upstream keeps open).
KEEPALIVE_S = 30.0
# Answer bytes held for a slow caller before the upstream socket stops being read.
READ_HIGH_WATER = 256 * 1024


class Answer:
    """One answer as it arrives on a connection: status, raw headers, then body pieces."""

    __slots__ = (
        "body",
        "buffered",
        "done",
        "error",
        "framed",
        "head_only",
        "headers",
        "interim",
        "keep_alive",
        "received",
        "status",
        "waiter",
    )

    def __init__(self, head_only: bool) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = False
        # Has Content-Length or Transfer-Encoding: otherwise the body ends when the upstream closes.
        self.framed = False
        self.interim = False  # a 1xx answer is being read; the real one follows
        self.head_only = head_only
        # Some of its bytes arrived: a close from here on cuts an answer short (502), where a close
        # before it means the request was never answered (503, and a pooled connection may be stale).
        self.received = False

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.closed = False
        self.holds_permit = False
        self.idle_since = 0.0
        self.reading_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False

    # --- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, so no isinstance here).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.answer is None:
            # Bytes nobody asked for: the connection cannot be trusted for another request.
            self.close()
            return
        self.answer.received = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(UpstreamProtocolError(f"the upstream's answer is not valid HTTP/1.1: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        answer = self.answer
        if answer is not None and answer.status and not answer.framed and not answer.interim:
            # An answer without length ends where the upstream closes (RFC 9112 §6.3, last rule).
            answer.keep_alive = False
            self._complete()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        answer = self.answer
        if answer is not None and answer.received:
            self._fail(UpstreamProtocolError("the upstream closed the connection before its answer was whole"), cause=exc)
        else:
            self._fail(UpstreamConnectionError("the upstream closed the connection"), cause=exc)
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # --- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            answer.framed = True

    def on_headers_complete(self) -> None:
        answer = self.answer
        if answer is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # 100 Continue and the like: not the answer; httptools reports it as a whole message.
            answer.interim = True
            answer.headers = []
            answer.framed = False
            return
        answer.status = status
        answer.keep_alive = self.parser.should_keep_alive()
        answer.wake()
        if answer.head_only:
            # httptools cannot be told the request was HEAD, so it would wait for a body the
            # Content-Length announces but never comes: end here, and never reuse the connection.
            answer.keep_alive = False
            self._complete()

    def on_body(self, body: bytes) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.body.append(body)
        answer.buffered += len(body)
        answer.wake()
        if answer.buffered > READ_HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is None:
            return
        if answer.interim:
            answer.interim = False
            return
        self._complete()

    # --- the client's side ------------------------------------------------------------------------
    def begin(self, head_only: bool) -> Answer:
        self.answer = Answer(head_only)
        return self.answer

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise UpstreamConnectionError("the upstream closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamConnectionError("the upstream closed the connection")
        if not self.write_paused:
            return
        self.drain_waiter = asyncio.get_running_loop().create_future()
        await self.drain_waiter
        if self.closed:
            raise UpstreamConnectionError("the upstream closed the connection")

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
        self.pool.forget(self)

    def _complete(self) -> None:
        answer = self.answer
        assert answer is not None
        answer.done = True
        self.answer = None
        answer.wake()
        if answer.keep_alive and not self.closed:
            # The answer's bytes are all in `answer`: the connection can serve the next request now.
            self.resume_reading()
            self.pool.release(self)
        else:
            self.close()

    def _fail(self, error: UpstreamConnectionError, cause: BaseException | None = None) -> None:
        answer = self.answer
        if answer is not None and not answer.done:
            error.__cause__ = cause
            answer.error = error
            self.answer = None
            answer.wake()

    def _wake_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Pool:
    """Keep-alive connections to one upstream origin, the most recently used first."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: asyncio.Semaphore):
        self.host = host
        self.port = port
        self.tls = tls
        self.limit = limit
        self.idle: list[Connection] = []

    def take(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        return None

    async def connect(self, timeout_s: float) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise UpstreamConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def release(self, conn: Connection) -> None:
        self._return_permit(conn)
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: Connection) -> None:
        self._return_permit(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _return_permit(self, conn: Connection) -> None:
        if conn.holds_permit:
            conn.holds_permit = False
            self.limit.release()

    def close(self) -> None:
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()


async def wait_for_news(answer: Answer, timeout_s: float) -> None:
    """Until the connection has news for `answer`, at most `timeout_s` (a read timeout, not a total)."""
    loop = asyncio.get_running_loop()
    waiter = answer.waiter = loop.create_future()
    timer = loop.call_later(timeout_s, expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        answer.waiter = None
