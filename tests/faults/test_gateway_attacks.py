"""The attacks of issue 13 on the gateway, kept as regression tests, against real sockets and servers.

Each test is an attack a resident (or anyone) made through the gateway's door, and the rule that
now holds against it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.limits import LimitedHttpToolsProtocol
from tests.gateway.conftest import COMMUNITY, gateway_template, running_gateway, upstream
from tests.gateway.conftest import Upstream as UpstreamFixture
from tests.gateway.upstream import serve
from tests.support.harness import RunningService
from tests.support.stack import TestStack

__all__ = ["gateway_template", "upstream"]  # fixtures, used by name


def resident(stack: TestStack) -> str:
    return stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)["Authorization"]


@asynccontextmanager
async def served(gw: RunningService) -> AsyncIterator[tuple[str, int]]:
    """The gateway on a real loopback port, on its own HTTP protocol."""
    async with serve(gw.app, lifespan=False, http=LimitedHttpToolsProtocol) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


async def answer_status(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split(b" ", 2)[1])


async def stalled_body(address: tuple[str, int], token: str) -> int:
    """A chunked POST whose body starts and then stops coming; the status the gateway answers."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(
            b"POST /api/timebank/echo HTTP/1.1\r\nhost: gw\r\nauthorization: %b\r\n"
            b"content-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n" % token.encode()
        )
        piece = b"x" * 70_000
        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        await writer.drain()
        return await answer_status(reader)
    finally:
        writer.close()


async def get_notes(address: tuple[str, int], token: str) -> int:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(
            b"GET /api/timebank/notes HTTP/1.1\r\nhost: gw\r\nauthorization: %b\r\nconnection: close\r\n\r\n" % token.encode()
        )
        await writer.drain()
        return await answer_status(reader)
    finally:
        writer.close()


async def test_a_residents_slow_bodies_never_open_a_breaker_while_the_service_answers_others(
    stack: TestStack, gateway_template: str, upstream: UpstreamFixture
) -> None:
    async with (
        running_gateway(
            stack,
            gateway_template,
            upstreams={"timebank": upstream.url},
            breaker_failure_threshold=2,
            breaker_open_s=30.0,
            default_timeout_s=0.5,
            body_read_timeout_s=1.0,
        ) as gw,
        served(gw) as address,
    ):
        attacker, other = resident(stack), resident(stack)
        for _ in range(2):
            statuses = await asyncio.gather(*(stalled_body(address, attacker) for _ in range(3)))
            # The client's slowness is the client's: 408, never an upstream timeout.
            assert statuses == [408, 408, 408]
            breaker = gw.state.proxy.upstreams["timebank"].breaker
            assert (breaker.state, breaker.failures) == ("closed", 0)
            assert await get_notes(address, other) == 200
