"""How much of a request the gateway takes in, enforced while the bytes arrive, not after.

The head: at most `REQUEST_LINE_BYTES` of request line, `HEADER_COUNT` header fields and
`HEAD_BYTES` in all, checked by the gateway's HTTP server protocol (`LimitedHttpToolsProtocol`,
uvicorn's own with counting added; `python -m gateway.serve` runs it) as the head is parsed, in
slices, so a head past a limit is answered `431 gateway/head-too-large` before it is held whole.

Bodies: a declared `Content-Length` over the limit is refused before anything is read (the front
door); a chunked body on the gateway's own routes is counted as it is received and refused the
moment it passes the limit (`LimitedReceive`), so FastAPI never holds more than the limit of it;
and every body on them (chunked or not) must keep arriving: no piece within `body_read_timeout_s`
is `408 gateway/body-timeout`, so a slowloris on `/auth/token` holds no request open.
The proxy path counts its bodies itself (`gateway.proxy.BodyStream`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.problems import BodyTimedOut, BodyTooLarge, HeadTimedOut, HeadTooLarge
from services.kit.problems import PROBLEM_MEDIA_TYPE, Problem, preferred_language, problem_response

log = logging.getLogger("gateway.limits")

REQUEST_LINE_BYTES = 16 * 1024
HEADER_COUNT = 100
HEAD_BYTES = 64 * 1024
# The head is handed to the parser this much at a time, so the count stops a huge head early.
HEAD_SLICE = 8 * 1024
# After a refusal, what the client still sends is read and dropped this long before the socket
# closes, so the answer is not lost to a reset of a socket with unread bytes.
LINGER_S = 2.0
# A head that trickles in slower than this ties up a connection for nothing: 408.
HEAD_TIMEOUT_S = 10.0
# The longest wait for the next piece of a proxied request body (the setting's default).
BODY_READ_TIMEOUT_S = 10.0


def body_too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge((f"请求体不得超过 {limit} 字节", f"The body may not exceed {limit} bytes"))


class BodyOverLimit(HTTPException):
    """A body that passed the limit while it was read.

    An HTTPException, because FastAPI lets those out of its body reading unchanged (any other error
    there becomes a 400); `on_body_over_limit` answers it with the gateway's 413 problem.
    """

    def __init__(self, limit: int):
        super().__init__(413)
        self.limit = limit


async def on_body_over_limit(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyOverLimit)
    return problem_response(body_too_large(exc.limit), request)


class BodyReadTimedOut(HTTPException):
    """A body on the gateway's own routes that stopped arriving (a slowloris on `/auth/token`).

    An HTTPException for the same reason as `BodyOverLimit`; `on_body_read_timed_out` answers it
    with the proxy path's 408 problem, `gateway/body-timeout`.
    """

    def __init__(self, timeout_s: float):
        super().__init__(408)
        self.timeout_s = timeout_s


async def on_body_read_timed_out(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyReadTimedOut)
    seconds = exc.timeout_s
    problem = BodyTimedOut((f"请求体 {seconds} 秒内没有新的数据", f"No part of the request body arrived within {seconds} s"))
    response = problem_response(problem, request)
    # The rest of that body is not read: the connection cannot carry another request.
    response.headers["connection"] = "close"
    return response


class LimitedReceive:
    """The ASGI `receive` of one request to the gateway's own routes: its body is refused once more
    than `limit` bytes came in, or when no piece of it arrives within `read_timeout_s`. Once the
    body is complete, `receive` is not timed (it then waits for the client to leave)."""

    __slots__ = ("body_done", "limit", "read_timeout_s", "receive", "size")

    def __init__(self, receive: Receive, limit: int, read_timeout_s: float = BODY_READ_TIMEOUT_S):
        self.receive = receive
        self.limit = limit
        self.read_timeout_s = read_timeout_s
        self.size = 0
        self.body_done = False

    async def __call__(self) -> Message:
        if self.body_done:
            return await self.receive()
        try:
            async with asyncio.timeout(self.read_timeout_s):
                message = await self.receive()
        except TimeoutError:
            raise BodyReadTimedOut(self.read_timeout_s) from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise BodyOverLimit(self.limit)
            self.body_done = not message.get("more_body", False)
        else:
            self.body_done = True
        return message


class HeadRefused(Exception):
    """Raised inside a parser callback to stop the parse of a head past a limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request head counted as it is parsed, and timed."""

    head_timeout_s = HEAD_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.in_head = True
        self.head_bytes = 0  # as received, request line included
        self.field_bytes = 0  # header names and values, as parsed
        self.refusal: Problem | None = None
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, so no isinstance here).
        super().connection_made(cast(asyncio.Transport, transport))
        self.start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # lingering: dropped
        if not self.in_head:
            super().data_received(data)
            return
        self.start_head_timer()
        for start in range(0, len(data), HEAD_SLICE):
            if not self.in_head:
                super().data_received(data[start:])
                return
            piece = data[start : start + HEAD_SLICE]
            self.head_bytes += len(piece)
            if self.head_bytes > HEAD_BYTES + REQUEST_LINE_BYTES:
                self.refuse(
                    HeadTooLarge((f"请求头不得超过 {HEAD_BYTES} 字节", f"The header fields may not exceed {HEAD_BYTES} bytes"))
                )
                return
            super().data_received(piece)
            if self.refusal is not None or self.transport.is_closing():
                return

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > REQUEST_LINE_BYTES:
            self.refusal = HeadTooLarge(
                (f"请求行不得超过 {REQUEST_LINE_BYTES} 字节", f"The request line may not exceed {REQUEST_LINE_BYTES} bytes")
            )
            raise HeadRefused

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(self.headers) > HEADER_COUNT:
            self.refusal = HeadTooLarge(
                (f"请求头字段不得超过 {HEADER_COUNT} 个", f"A request may carry at most {HEADER_COUNT} header fields")
            )
            raise HeadRefused
        self.field_bytes += len(name) + len(value)
        if self.field_bytes > HEAD_BYTES:
            self.refusal = HeadTooLarge(
                (f"请求头不得超过 {HEAD_BYTES} 字节", f"The header fields may not exceed {HEAD_BYTES} bytes")
            )
            raise HeadRefused

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next bytes on this connection start the next request's head.
        self.in_head = True
        self.head_bytes = self.field_bytes = 0

    def send_400_response(self, msg: str) -> None:
        # The parser stopped: at a callback that refused the head, or at bytes that are not HTTP.
        if self.refusal is None:
            super().send_400_response(msg)
        else:
            self.refuse(self.refusal)

    def start_head_timer(self) -> None:
        """A head must arrive whole within `head_timeout_s` of its first byte (or of the connection)."""
        if self.head_timer is None and self.refusal is None:
            self.head_timer = asyncio.get_running_loop().call_later(self.head_timeout_s, self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.in_head and self.refusal is None and not self.transport.is_closing():
            self.refuse(
                HeadTimedOut(
                    (f"请求头未在 {self.head_timeout_s} 秒内到齐", f"The request head took over {self.head_timeout_s} s")
                )
            )

    def refuse(self, problem: Problem) -> None:
        """Answer with `problem`, then read and drop the rest for a moment and close."""
        self.refusal = problem
        self.stop_head_timer()
        lang = preferred_language(None)
        body = json.dumps(problem.body(lang), ensure_ascii=False).encode()
        head = [b"HTTP/1.1 %d %b\r\n" % (problem.status, HTTPStatus(problem.status).phrase.encode())]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
            b"content-language: " + lang.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        log.info("refused a request head from %s: %s", self.client[0] if self.client else "-", problem.detail_text("en"))
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)
