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
from collections.abc import AsyncGenerator, AsyncIterable

from gateway.upstream import (
    InvalidUpstreamURL,
    RequestBody,
    UpstreamConnectionError,
    UpstreamReply,
)
from gateway.upstream_connection import Answer, Connection, Pool, wait_for_news

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Sent again on a new connection when a pooled one turns out dead before any answer (RFC 9110
# §9.2.2); a POST might have been acted on, so it is not.
RESENDABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class HttptoolsEngine:
    """The proxy path on `asyncio.Protocol` + httptools, keep-alive connections per upstream.

    `max_connections` bounds the connections in use at once (over all upstreams); a request
    beyond it waits for one to be released.
    """

    def __init__(self, max_connections: int):
        self.limit = asyncio.Semaphore(max_connections)
        self.pools: dict[str, Pool] = {}
        self._tls: ssl.SSLContext | None = None

    def _pool(self, origin: str) -> tuple[Pool, str]:
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
            pool = self.pools[origin] = Pool(host, int(port) if port else default_port, tls, self.limit)
        return pool, origin.partition("://")[2]

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: RequestBody,
        timeout_s: float,
        read_timeout_s: float | None = None,
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
                    await wait_for_news(answer, timeout_s)
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
            reading = _Reading(conn, answer, timeout_s if read_timeout_s is None else read_timeout_s)
            return UpstreamReply(answer.status, answer.headers, reading.chunks, reading.close)
        raise AssertionError("unreachable")

    async def _write_streamed(self, conn: Connection, head: bytes, body: AsyncIterable[bytes], chunked: bool) -> None:
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

    def __init__(self, conn: Connection, answer: Answer, timeout_s: float):
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
                await wait_for_news(answer, self.timeout_s)
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
