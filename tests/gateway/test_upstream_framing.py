"""Malformed upstream answers: each is a clear failure (a 502 problem through the gateway), and the
connection pool stays healthy for the requests after it.

A raw asyncio server writes answers no well-behaved framework would: both Content-Length and
Transfer-Encoding (the classic smuggling shape), a repeated or conflicting Content-Length, chunk
sizes that are not hex, overflow or lie, and answers cut short in their head or body.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.upstream import UpstreamProtocolError
from gateway.upstream_client import HttptoolsEngine
from tests.gateway.conftest import COMMUNITY, running_gateway
from tests.gateway.upstream import RawServer, raw_server, serve
from tests.support.stack import TestStack

GOOD = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\ngood"
# Each answer is written whole; the server then closes the connection (a cut-short answer ends there).
MALFORMED: dict[str, bytes] = {
    "content-length-with-transfer-encoding": (
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "transfer-encoding-with-content-length": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "conflicting-content-lengths": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello",
    "repeated-content-length": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
    "content-length-list": b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello",
    "chunk-size-not-hex": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk-size-overflow": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "chunk-longer-than-its-size": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    "ends-inside-the-head": b"HTTP/1.1 200 OK\r\ncontent-type: text/pl",
    "ends-before-content-length": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part",
    "ends-before-the-last-chunk": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
}
# Past the part the gateway holds before the status goes out: only the caller's connection can tell.
CUT_LATE = b"HTTP/1.1 200 OK\r\ncontent-length: 200000\r\n\r\n" + b"x" * 100_000


async def answers(head: bytes, writer: asyncio.StreamWriter) -> bool:
    """`GET /<case>` gets that malformed answer and the connection closes; anything else is fine."""
    target = head.split(b" ", 2)[1].decode()
    case = target.partition("?")[0].strip("/").rsplit("/", 1)[-1]
    if case in MALFORMED or case == "cut-late":
        writer.write(MALFORMED.get(case, CUT_LATE))
        await writer.drain()
        return False
    writer.write(GOOD)
    await writer.drain()
    return True


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[RawServer]:
    async with raw_server(answers) as running:
        yield running


def pool_is_healthy(engine: HttptoolsEngine, max_connections: int) -> None:
    assert engine.limit._value == max_connections, "every connection's permit came back"
    assert all(not conn.closed for pool in engine.pools.values() for conn in pool.idle), "no dead connection is pooled"


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_the_client_refuses_a_malformed_answer_and_keeps_its_pool_healthy(server: RawServer, case: str) -> None:
    engine = HttptoolsEngine(max_connections=2)
    try:
        reply = await engine.send("GET", f"{server.url}/fine", [], b"", 5)
        assert await reply.read() == b"good"  # a pooled connection, idle beside the request below
        with pytest.raises(UpstreamProtocolError):
            reply = await engine.send("GET", f"{server.url}/{case}", [], b"", 5)
            await reply.read()
        pool_is_healthy(engine, 2)
        for _ in range(3):
            reply = await engine.send("GET", f"{server.url}/fine", [], b"", 5)
            assert (reply.status, await reply.read()) == (200, b"good")
        pool_is_healthy(engine, 2)
    finally:
        await engine.aclose()


async def test_a_malformed_answer_is_not_sent_again_even_for_a_get(server: RawServer) -> None:
    engine = HttptoolsEngine(max_connections=2)
    try:
        with pytest.raises(UpstreamProtocolError):
            await engine.send("GET", f"{server.url}/conflicting-content-lengths?once", [], b"", 5)
        assert sum(b"?once " in head for head in server.heads) == 1, "the upstream took the request: once is enough"
    finally:
        await engine.aclose()


async def test_the_gateway_answers_each_malformed_answer_with_a_502_problem(
    stack: TestStack, gateway_template: str, server: RawServer
) -> None:
    headers = stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)
    async with running_gateway(
        stack, gateway_template, upstreams={"timebank": server.url}, breaker_failure_threshold=1000, upstream_max_connections=4
    ) as gw:
        engine = gw.state.proxy.engine
        for case in sorted(MALFORMED):
            asked = sum(f"GET /{case} ".encode() in head for head in server.heads)
            r = await gw.client.get(f"/api/timebank/{case}", headers=headers)
            assert r.status_code == 502, (case, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["type"] == "urn:community:problem:gateway/bad-upstream-answer", case
            assert problem["upstream"] == "timebank"
            assert "hello" not in r.text and "only part" not in r.text, "nothing of the broken answer is passed on"
            assert sum(f"GET /{case} ".encode() in head for head in server.heads) == asked + 1, f"{case}: not retried"
            pool_is_healthy(engine, 4)
            fine = await gw.client.get("/api/timebank/fine", headers=headers)
            assert (fine.status_code, fine.text) == (200, "good"), case
        pool_is_healthy(engine, 4)


async def test_an_answer_cut_short_after_its_status_went_out_cuts_the_callers_connection(
    stack: TestStack, gateway_template: str, server: RawServer
) -> None:
    headers = stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)
    async with (
        running_gateway(stack, gateway_template, upstreams={"timebank": server.url}, upstream_max_connections=4) as gw,
        serve(gw.app, lifespan=False) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/api/timebank/cut-late", headers=headers)
        pool_is_healthy(gw.state.proxy.engine, 4)
        fine = await client.get("/api/timebank/fine", headers=headers)
        assert (fine.status_code, fine.text) == (200, "good")
