"""What the gateway takes in of a request is bounded while it arrives, on every route.

A body is refused with 413 the moment it passes the limit, before the rest is read, whether it
declares its length or comes in chunks, on the gateway's own routes as on the proxied ones. A
request head past a limit (request line, header count, header bytes) is refused with 431 by the
gateway's HTTP protocol before the head is complete, so it is never held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.limits import HEAD_BYTES, HEADER_COUNT, REQUEST_LINE_BYTES, LimitedHttpToolsProtocol
from tests.gateway.conftest import COMMUNITY
from tests.gateway.upstream import serve
from tests.support.harness import RunningService
from tests.support.stack import TestStack

LIMIT = 1024 * 1024  # the gateway's default max_body_bytes
PIECE = 64 * 1024


@dataclass
class Trickle:
    """A chunked body of `pieces` x 64 KiB, counting how much of it the gateway asked for."""

    pieces: int
    sent: int = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.pieces):
            self.sent += 1
            yield b"{" + b" " * (PIECE - 1)


@pytest.mark.parametrize("path", ["/auth/token", "/auth/otp", "/auth/logout", "/api/timebank/echo"])
async def test_a_chunked_body_past_the_limit_is_refused_before_the_rest_is_read(
    stack: TestStack, gateway: RunningService, path: str
) -> None:
    body = Trickle(pieces=64)  # 4 MiB
    headers = {"content-type": "application/json", **stack.auth("a-resident", "resident", community=COMMUNITY)}
    r = await gateway.client.post(path, content=body, headers=headers)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:community:problem:gateway/body-too-large"
    assert body.sent <= LIMIT // PIECE + 2, f"read {body.sent} pieces of 64 KiB for a 1 MiB limit"


async def test_a_chunked_body_within_the_limit_still_reaches_the_route(stack: TestStack, gateway: RunningService) -> None:
    async def small() -> AsyncIterator[bytes]:
        yield b'{"community": "test-community", '
        yield b'"phone": "17000000000"}'

    r = await gateway.client.post("/auth/otp", content=small(), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("path", ["/auth/token", "/api/timebank/echo"])
async def test_a_declared_length_past_the_limit_is_refused_before_any_is_read(
    stack: TestStack, gateway: RunningService, path: str
) -> None:
    body = Trickle(pieces=20)
    headers = {"content-length": str(20 * PIECE), **stack.auth("a-resident", "resident", community=COMMUNITY)}
    r = await gateway.client.post(path, content=body, headers=headers)
    assert r.status_code == 413
    assert r.json()["type"] == "urn:community:problem:gateway/body-too-large"
    assert body.sent <= 1


async def exchange(url: str, head: bytes) -> bytes:
    """Write `head` and read the answer to its end (the server closes after a refusal)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def problem_of(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/problem+json" in head.lower(), head
    return status, json.loads(body)


@pytest.fixture
async def served(gateway: RunningService) -> AsyncIterator[str]:
    async with serve(gateway.app, lifespan=False, http=LimitedHttpToolsProtocol) as url:
        yield url


async def test_a_head_within_the_limits_is_served(stack: TestStack, served: str) -> None:
    token = stack.auth("a-resident", "resident", community=COMMUNITY)["Authorization"]
    fields = b"".join(b"x-field-%d: %b\r\n" % (i, b"v" * 500) for i in range(HEADER_COUNT - 5))
    answer = await exchange(
        served,
        b"GET /api/timebank/echo HTTP/1.1\r\nhost: gw\r\nauthorization: %b\r\n%bconnection: close\r\n\r\n"
        % (token.encode(), fields),
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


@pytest.mark.parametrize(
    ("what", "head"),
    [
        ("request line", b"GET /api/timebank/echo?q=" + b"a" * (REQUEST_LINE_BYTES + 10) + b" HTTP/1.1\r\nhost: gw\r\n\r\n"),
        ("header count", b"GET /auth/me HTTP/1.1\r\n" + b"".join(b"x-%d: 1\r\n" % i for i in range(HEADER_COUNT + 1)) + b"\r\n"),
        (
            "header bytes",
            b"GET /auth/me HTTP/1.1\r\nhost: gw\r\n" + b"".join(b"x-%d: %b\r\n" % (i, b"v" * 8000) for i in range(9)) + b"\r\n",
        ),
    ],
)
async def test_a_head_past_a_limit_is_refused_with_431(served: str, what: str, head: bytes) -> None:
    answer = await exchange(served, head)
    status, problem = problem_of(answer)
    assert (status, problem["type"]) == (431, "urn:community:problem:gateway/head-too-large"), what


async def test_a_huge_header_is_refused_before_it_is_whole(served: str) -> None:
    # One header value past every limit and never finished: the answer comes all the same.
    answer = await exchange(
        served, b"POST /auth/token HTTP/1.1\r\nhost: gw\r\nx-huge: " + b"a" * (HEAD_BYTES + REQUEST_LINE_BYTES)
    )
    status, problem = problem_of(answer)
    assert status == 431 and problem["type"] == "urn:community:problem:gateway/head-too-large"


class QuickHeadTimeout(LimitedHttpToolsProtocol):
    head_timeout_s = 0.5


async def trickle(writer: asyncio.StreamWriter) -> None:
    """A byte now and then, as a slowloris keeps a head from ever ending."""
    with contextlib.suppress(ConnectionError):
        while not writer.is_closing():
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.05)


async def test_a_head_that_trickles_in_is_answered_408_and_closed(gateway: RunningService) -> None:
    async with serve(gateway.app, lifespan=False, http=QuickHeadTimeout) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /auth/me HTTP/1.1\r\nhost: gw\r\nx-slow: ")
        slowloris = asyncio.create_task(trickle(writer))
        try:
            answer = await asyncio.wait_for(reader.read(), 10)
        finally:
            slowloris.cancel()
            writer.close()
        status, problem = problem_of(answer)
        assert (status, problem["type"]) == (408, "urn:community:problem:gateway/head-timeout")


async def test_an_idle_new_connection_is_answered_408_too(gateway: RunningService) -> None:
    async with serve(gateway.app, lifespan=False, http=QuickHeadTimeout) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            status, problem = problem_of(await asyncio.wait_for(reader.read(), 10))
        finally:
            writer.close()
        assert (status, problem["type"]) == (408, "urn:community:problem:gateway/head-timeout")
