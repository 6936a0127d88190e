"""How much of a request the gateway takes in, enforced while the bytes arrive, not after.

The head: at most `REQUEST_LINE_BYTES` of request line, `HEADER_COUNT` header fields and
`HEAD_BYTES` in all, checked by the gateway's HTTP server protocol (`LimitedHttpToolsProtocol`,
uvicorn's own with counting added; `python -m gateway.serve` runs it) as the head is parsed, in
slices, so a head past a limit is answered `431 gateway/head-too-large` before it is held whole.

Bodies: a declared `Content-Length` over the limit is refused before anything is read (the front
door); a chunked body on the gateway's own routes is counted as it is received and refused the
moment it passes the limit (`LimitedReceive`), so FastAPI never holds more than the limit of it.
The proxy path counts its bodies itself (`gateway.proxy.BodyStream`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.problems import BodyTooLarge, HeadTooLarge
from services.kit.problems import PROBLEM_MEDIA_TYPE, preferred_language, problem_response

log = logging.getLogger("gateway.limits")

REQUEST_LINE_BYTES = 16 * 1024
HEADER_COUNT = 100
HEAD_BYTES = 64 * 1024
# The head is handed to the parser this much at a time, so the count stops a huge head early.
HEAD_SLICE = 8 * 1024
# After a refusal, what the client still sends is read and dropped this long before the socket
# closes, so the answer is not lost to a reset of a socket with unread bytes.
LINGER_S = 2.0


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


class LimitedReceive:
    """The ASGI `receive` of one request, refusing its body once more than `limit` bytes came in."""

    __slots__ = ("limit", "receive", "size")

    def __init__(self, receive: Receive, limit: int):
        self.receive = receive
        self.limit = limit
        self.size = 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                raise BodyOverLimit(self.limit)
        return message


class HeadRefused(Exception):
    """Raised inside a parser callback to stop the parse of a head past a limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request head counted as it is parsed."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.in_head = True
        self.head_bytes = 0  # as received, request line included
        self.field_bytes = 0  # header names and values, as parsed
        self.refusal: tuple[str, str] | None = None

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # lingering: dropped
        if not self.in_head:
            super().data_received(data)
            return
        for start in range(0, len(data), HEAD_SLICE):
            if not self.in_head:
                super().data_received(data[start:])
                return
            piece = data[start : start + HEAD_SLICE]
            self.head_bytes += len(piece)
            if self.head_bytes > HEAD_BYTES + REQUEST_LINE_BYTES:
                self.refuse((f"请求头不得超过 {HEAD_BYTES} 字节", f"The header fields may not exceed {HEAD_BYTES} bytes"))
                return
            super().data_received(piece)
            if self.refusal is not None or self.transport.is_closing():
                return

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > REQUEST_LINE_BYTES:
            self.refusal = (
                f"请求行不得超过 {REQUEST_LINE_BYTES} 字节",
                f"The request line may not exceed {REQUEST_LINE_BYTES} bytes",
            )
            raise HeadRefused

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(self.headers) > HEADER_COUNT:
            self.refusal = (f"请求头字段不得超过 {HEADER_COUNT} 个", f"A request may carry at most {HEADER_COUNT} header fields")
            raise HeadRefused
        self.field_bytes += len(name) + len(value)
        if self.field_bytes > HEAD_BYTES:
            self.refusal = (f"请求头不得超过 {HEAD_BYTES} 字节", f"The header fields may not exceed {HEAD_BYTES} bytes")
            raise HeadRefused

    def on_headers_complete(self) -> None:
        self.in_head = False
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

    def refuse(self, detail: tuple[str, str]) -> None:
        """Answer 431 with the gateway's problem, then read and drop the rest for a moment and close."""
        self.refusal = detail
        problem = HeadTooLarge(detail)
        lang = preferred_language(None)
        body = json.dumps(problem.body(lang), ensure_ascii=False).encode()
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
            b"content-language: " + lang.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        log.info("refused a request head from %s: %s", self.client[0] if self.client else "-", detail[1])
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)
