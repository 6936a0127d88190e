"""A request body on its way through the proxy: counted against the limit, and timed as the caller's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request

from gateway.limits import BODY_READ_TIMEOUT_S, body_too_large
from gateway.problems import BodyTimedOut


class BodyStream:
    """A request body passed on as it arrives, refused once it grows past the limit.

    The upstream client reports the abort as a broken connection; `overflowed` tells the two apart,
    so an oversized body is a 413 for the caller and not a failure counted against the upstream.
    While the next piece is awaited from the caller, the upstream's clock (`upstream_clock`) is
    stopped and the caller's own (`read_timeout_s`) runs: a body that stops arriving is the caller's
    408, never an upstream timeout that would count against the service's circuit breaker.
    """

    def __init__(self, request: Request, limit: int, read_timeout_s: float = BODY_READ_TIMEOUT_S):
        self.request = request
        self.limit = limit
        self.read_timeout_s = read_timeout_s
        self.overflowed = False
        self.upstream_clock: asyncio.Timeout | None = None
        self.upstream_timeout_s = 0.0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        pieces = self.request.stream()
        while True:
            self.stop_upstream_clock()
            try:
                chunk = await read_piece(pieces, self.read_timeout_s)
            except StopAsyncIteration:
                break
            finally:
                self.restart_upstream_clock()
            size += len(chunk)
            if size > self.limit:
                self.overflowed = True
                raise body_too_large(self.limit)
            if chunk:
                yield chunk

    def stop_upstream_clock(self) -> None:
        if self.upstream_clock is not None:
            self.upstream_clock.reschedule(None)

    def restart_upstream_clock(self) -> None:
        if self.upstream_clock is not None:
            self.upstream_clock.reschedule(asyncio.get_running_loop().time() + self.upstream_timeout_s)


async def read_piece(pieces: AsyncIterator[bytes], timeout_s: float) -> bytes:
    """The caller's next piece of body, or `BodyTimedOut` when none comes within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await anext(pieces)
    except TimeoutError:
        raise BodyTimedOut(
            (f"请求体 {timeout_s} 秒内没有新的数据", f"No part of the request body arrived within {timeout_s} s")
        ) from None
