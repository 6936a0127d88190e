"""The proxy's HTTP/1.1 client: asyncio.Protocol + httptools, keep-alive connections per upstream.

The proxy needs little of a general client: one request head written in one go, the answer parsed
by httptools (the same parser uvicorn uses on the way in), its body handed on as it arrives,
connections kept open per upstream and reused. Nothing here decodes, decompresses, follows
redirects or keeps cookies. It fulfils the contract in `gateway/upstream.py`: failures are
`UpstreamConnectionError` (refused, reset, closed before any answer), `UpstreamProtocolError`
(an answer that is not valid HTTP/1.1: conflicting or repeated lengths, a bad chunk, an answer cut
short) or `TimeoutError`, which the proxy maps to 503, 502 and 504.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable
from typing import cast

import httptools

from gateway.upstream import (
    InvalidUpstreamURL,
    RequestBody,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamReply,
)

# Idle connections older than this are not reused (the services' uvicorn closes them after 5 s
# itself; this only bounds what a quieter upstream keeps open).
KEEPALIVE_S = 30.0
# Answer bytes held for a slow caller before the upstream socket stops being read.
READ_HIGH_WATER = 256 * 1024
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Sent again on a new connection when a pooled one turns out dead before any answer (RFC 9110
# §9.2.2); a POST might have been acted on, so it is not.
RESENDABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _Answer:
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


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: _Answer | None = None
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
    def begin(self, head_only: bool) -> _Answer:
        self.answer = _Answer(head_only)
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


class _Pool:
    """Keep-alive connections to one upstream origin, the most recently used first."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: asyncio.Semaphore):
        self.host = host
        self.port = port
        self.tls = tls
        self.limit = limit
        self.idle: list[_Connection] = []

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        return None

    async def connect(self, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
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

    def release(self, conn: _Connection) -> None:
        self._return_permit(conn)
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._return_permit(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _return_permit(self, conn: _Connection) -> None:
        if conn.holds_permit:
            conn.holds_permit = False
            self.limit.release()

    def close(self) -> None:
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()


async def _wait(answer: _Answer, timeout_s: float) -> None:
    """Until the connection has news for `answer`, at most `timeout_s` (a read timeout, not a total)."""
    loop = asyncio.get_running_loop()
    waiter = answer.waiter = loop.create_future()
    timer = loop.call_later(timeout_s, _expire, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        answer.waiter = None


class HttptoolsEngine:
    """The proxy path on `asyncio.Protocol` + httptools, keep-alive connections per upstream.

    `max_connections` bounds the connections in use at once (over all upstreams); a request
    beyond it waits for one to be released.
    """

    def __init__(self, max_connections: int):
        self.limit = asyncio.Semaphore(max_connections)
        self.pools: dict[str, _Pool] = {}
        self._tls: ssl.SSLContext | None = None

    def _pool(self, origin: str) -> tuple[_Pool, str]:
        """The pool for "http://host:port" and the Host header's value."""
        pool = self.pools.get(origin)
        if pool is None:
            scheme, _, authority = origin.partition("://")
            if scheme not in ("http", "https") or not authority:
                raise InvalidUpstreamURL(f"not an http(s) origin: {origin!r}")
            if authority.startswith("["):  # an IPv6 literal
                host, _, rest = authority[1:].partition("]")
                port = rest[1:] if rest.startswith(":") else ""
            else:
                host, _, port = authority.partition(":")
            if port and not port.isdigit():
                raise InvalidUpstreamURL(f"not a port: {origin!r}")
            tls = None
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                tls = self._tls
            default_port = 443 if scheme == "https" else 80
            pool = self.pools[origin] = _Pool(host, int(port) if port else default_port, tls, self.limit)
        return pool, origin.partition("://")[2]

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: RequestBody,
        timeout_s: float,
    ) -> UpstreamReply:
        scheme_end = url.find("://")
        path_start = url.find("/", scheme_end + 3) if scheme_end >= 0 else -1
        if path_start < 0:
            origin, target = url, "/"
        else:
            origin, target = url[:path_start], url[path_start:]
        pool, authority = self._pool(origin)

        lines = [f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        # A declared Content-Length (forwarded with a streamed body) frames it; else chunks do.
        chunked = not isinstance(body, bytes) and not any(name.lower() == "content-length" for name, _ in headers)
        if chunked:
            lines.append("transfer-encoding: chunked\r\n")
        elif isinstance(body, bytes) and (body or method in METHODS_WITH_BODY):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        head_text = "".join(lines)
        # One CR and one LF per line: anything else would let a value smuggle in a header.
        if " " in target or head_text.count("\n") != len(lines) + 1 or head_text.count("\r") != len(lines) + 1:
            raise InvalidUpstreamURL("a line break or space inside the target or a header")
        try:
            head = head_text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise InvalidUpstreamURL("characters outside Latin-1 in the request head") from exc

        head_only = method == "HEAD"
        # A pooled connection the upstream closed a moment ago fails before any answer byte; an
        # idempotent request with its body in hand is sent again once on a new connection.
        for attempt in (0, 1):
            await self.limit.acquire()
            conn = pool.take()
            reused = conn is not None
            if conn is None:
                try:
                    conn = await pool.connect(timeout_s)
                except BaseException:
                    self.limit.release()
                    raise
            conn.holds_permit = True
            answer = conn.begin(head_only)
            try:
                if isinstance(body, bytes):
                    conn.write(head + body if body else head)
                else:
                    await self._write_streamed(conn, head, body, chunked)
                while not answer.status and answer.error is None:
                    await _wait(answer, timeout_s)
                if answer.error is not None:
                    raise answer.error
            except UpstreamConnectionError:
                conn.close()
                if attempt == 0 and reused and not answer.received and isinstance(body, bytes) and method in RESENDABLE:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            reading = _Reading(conn, answer, timeout_s)
            return UpstreamReply(answer.status, answer.headers, reading.chunks, reading.close)
        raise AssertionError("unreachable")

    async def _write_streamed(self, conn: _Connection, head: bytes, body: AsyncIterable[bytes], chunked: bool) -> None:
        conn.write(head)
        async for piece in body:
            conn.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")

    async def aclose(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


class _Reading:
    """The body of one answer as the caller reads it, and the connection's fate afterwards."""

    __slots__ = ("answer", "conn", "timeout_s")

    def __init__(self, conn: _Connection, answer: _Answer, timeout_s: float):
        self.conn = conn
        self.answer = answer
        self.timeout_s = timeout_s

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        answer = self.answer
        try:
            while True:
                if answer.body:
                    data = answer.body.popleft() if len(answer.body) == 1 else b"".join(answer.body)
                    answer.body.clear()
                    answer.buffered = 0
                    self.conn.resume_reading()
                    yield data
                    continue
                if answer.error is not None:
                    raise answer.error
                if answer.done:
                    return
                await _wait(answer, self.timeout_s)
        finally:
            if not answer.done:
                # Timed out, or the caller went away mid-answer (the generator is closed or
                # collected): the rest of the answer would reach the next request, and the
                # connection's permit must come back.
                self.conn.close()

    async def close(self) -> None:
        if not self.answer.done:
            # Not read to its end: the rest would arrive as the next request's answer.
            self.conn.close()
