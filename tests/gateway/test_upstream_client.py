"""The gateway's own HTTP/1.1 client (gateway/upstream_client.py) against real local servers.

A small asyncio server speaks raw HTTP/1.1 on a loopback port so each test can shape the answer
exactly (chunks, `Connection: close`, silence, an answer cut short); the uvicorn test upstream
checks streamed request bodies and large answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
import uvloop

from deploy.local.servers import free_port
from gateway.bodies import BodyStream
from gateway.upstream import InvalidUpstreamURL, UpstreamConnectionError, UpstreamReply
from gateway.upstream_client import HttptoolsEngine
from tests.gateway.conftest import COMMUNITY, Upstream, running_gateway
from tests.gateway.upstream import Answer, raw_server
from tests.support.stack import TestStack


def ok_answer(body: bytes, extra: bytes = b"") -> Answer:
    async def answer(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body))
        await writer.drain()
        return b"connection: close" not in extra.lower()

    return answer


@pytest.fixture
async def engine() -> AsyncIterator[HttptoolsEngine]:
    engine = HttptoolsEngine(max_connections=10)
    yield engine
    await engine.aclose()


async def get(engine: HttptoolsEngine, url: str, timeout_s: float = 5.0) -> tuple[UpstreamReply, bytes]:
    reply = await engine.send("GET", url, [("x-request-id", "t-1")], b"", timeout_s)
    return reply, await reply.read()


async def test_keep_alive_connections_are_reused_and_the_head_is_written_as_sent(engine: HttptoolsEngine) -> None:
    async with raw_server(ok_answer(b"hello")) as server:
        for i in range(3):
            reply, body = await get(engine, f"{server.url}/members/me?page={i}")
            assert (reply.status, body) == (200, b"hello")
            assert reply.header(b"content-type") == b"text/plain"
        assert server.connections == 1
        assert server.heads[0].startswith(b"GET /members/me?page=0 HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"x-request-id: t-1\r\n" in server.heads[0]
        assert b"content-length" not in server.heads[0]  # a GET without body announces none


async def test_a_chunked_answer_arrives_whole_and_the_connection_serves_the_next_request(
    engine: HttptoolsEngine,
) -> None:
    async def chunked(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"alpha-", b"beta-", b"gamma"):
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        return True

    async with raw_server(chunked) as server:
        reply = await engine.send("GET", f"{server.url}/feed", [], b"", 5)
        pieces = [piece async for piece in reply.chunks()]
        await reply.close()
        assert b"".join(pieces) == b"alpha-beta-gamma"
        assert len(pieces) >= 2, "pieces are handed on as they arrive, not held to the end"
        _, body = await get(engine, f"{server.url}/feed")
        assert body == b"alpha-beta-gamma"
        assert server.connections == 1


async def test_a_caller_leaving_mid_answer_frees_the_connection_for_the_next_request() -> None:
    async def trickle(head: bytes, writer: asyncio.StreamWriter) -> bool:
        if head.startswith(b"GET /short"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"5\r\ndrip!\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        return False

    engine = HttptoolsEngine(max_connections=1)
    try:
        async with raw_server(trickle) as server:
            reply = await engine.send("GET", f"{server.url}/long", [], b"", 5)
            pieces = reply.chunks()
            assert isinstance(pieces, AsyncGenerator)
            assert await anext(pieces) == b"drip!"
            await pieces.aclose()  # as Starlette leaves the body iterator when the caller disconnects
            # With one connection allowed, this waits forever unless the abandoned one was given back.
            reply = await asyncio.wait_for(engine.send("GET", f"{server.url}/short", [], b"", 5), 2)
            assert await reply.read() == b"ok"
    finally:
        await engine.aclose()


async def test_connection_close_from_the_upstream_is_honoured(engine: HttptoolsEngine) -> None:
    async with raw_server(ok_answer(b"bye", b"connection: close\r\n")) as server:
        for _ in range(2):
            reply, body = await get(engine, f"{server.url}/x")
            assert (reply.status, body) == (200, b"bye")
        assert server.connections == 2
        assert not engine.pools[server.url].idle


async def test_a_pooled_connection_the_upstream_dropped_is_replaced_for_idempotent_requests_only(
    engine: HttptoolsEngine,
) -> None:
    # Each connection answers its first request, then closes on the next without a word (as a
    # server does when its idle timeout races that request): a GET is sent again on a new
    # connection, a POST is not (the upstream may have acted on it).
    served: dict[int, int] = {}

    async def drop_the_second(head: bytes, writer: asyncio.StreamWriter) -> bool:
        served[id(writer)] = served.get(id(writer), 0) + 1
        if served[id(writer)] > 1:
            return False
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async with raw_server(drop_the_second) as server:
        for _ in range(3):
            reply, body = await get(engine, f"{server.url}/x")
            assert (reply.status, body) == (200, b"ok")
        assert (server.connections, len(server.heads)) == (3, 5)
        with pytest.raises(UpstreamConnectionError):
            await engine.send("POST", f"{server.url}/transfers", [], b"{}", 5)
        assert len(server.heads) == 6, "the POST went out once"


async def test_an_answer_without_length_ends_when_the_upstream_closes(engine: HttptoolsEngine) -> None:
    async def until_close(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nto the end")
        await writer.drain()
        return False

    async with raw_server(until_close) as server:
        reply, body = await get(engine, f"{server.url}/x")
        assert (reply.status, body) == (200, b"to the end")


async def test_an_answer_cut_short_is_a_connection_error_not_a_short_body(engine: HttptoolsEngine) -> None:
    async def cut_short(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with raw_server(cut_short) as server:
        reply = await engine.send("GET", f"{server.url}/x", [], b"", 5)
        with pytest.raises(UpstreamConnectionError):
            await reply.read()


async def test_an_upstream_that_stays_silent_times_out(engine: HttptoolsEngine) -> None:
    async def silent(head: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    async with raw_server(silent) as server:
        start = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await engine.send("GET", f"{server.url}/x", [], b"", 0.3)
        assert 0.25 <= time.monotonic() - start < 2
        assert isinstance(caught.value, TimeoutError)
        assert not engine.pools[server.url].idle, "a connection with an answer still owed is not reused"


async def test_a_body_that_stops_midway_times_out(engine: HttptoolsEngine) -> None:
    async def stalls(head: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfive!")
        await writer.drain()
        await asyncio.sleep(30)
        return False

    async with raw_server(stalls) as server:
        reply = await engine.send("GET", f"{server.url}/x", [], b"", 0.3)
        assert reply.status == 200
        with pytest.raises(TimeoutError):
            await reply.read()


async def test_connection_refused_is_a_connection_error_not_a_timeout(engine: HttptoolsEngine) -> None:
    with pytest.raises(UpstreamConnectionError) as caught:
        await engine.send("GET", f"http://127.0.0.1:{free_port()}/x", [], b"", 5)
    assert not isinstance(caught.value, TimeoutError)
    # The permit taken for the failed attempt is given back.
    assert engine.limit._value == 10


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(engine: HttptoolsEngine) -> None:
    async with raw_server(ok_answer(b"x")) as server:
        with pytest.raises(InvalidUpstreamURL):
            await engine.send("GET", f"{server.url}/x", [("x-a", "1\r\nx-injected: yes")], b"", 5)
        with pytest.raises(InvalidUpstreamURL):
            await engine.send("GET", f"{server.url}/a b", [], b"", 5)
        assert server.heads == []


async def test_bodies_stream_both_ways_with_the_uvicorn_upstream(engine: HttptoolsEngine, upstream: Upstream) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB

    class Caller:
        """Stands in for the caller's request as `BodyStream` reads it: pieces as they arrive."""

        async def stream(self) -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 10_000):
                yield payload[start : start + 10_000]

    streamed = BodyStream(Caller(), limit=1024 * 1024)  # type: ignore[arg-type]
    reply = await engine.send("POST", f"{upstream.url}/echo", [("content-type", "application/octet-stream")], streamed, 5)
    echoed = await reply.read()
    assert reply.status == 200
    assert f'"body_sha256":"{hashlib.sha256(payload).hexdigest()}"'.encode() in echoed
    assert b'"transfer-encoding":"chunked"' in echoed

    reply = await engine.send("PUT", f"{upstream.url}/echo", [], b"small body", 5)
    assert b'"body_len":10' in await reply.read()

    reply = await engine.send("GET", f"{upstream.url}/stream?chunks=40", [], b"", 5)
    assert reply.header(b"content-length") is None
    assert await reply.read() == b"".join(bytes([65 + i % 26]) * 16384 for i in range(40))


async def test_the_gateway_routes_streams_replays_and_maps_failures_on_it(
    stack: TestStack, gateway_template: str, upstream: Upstream
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with running_gateway(
        stack,
        gateway_template,
        upstreams={"timebank": upstream.url, "parking": down},
        route_timeouts_s={"timebank/slow": 0.3},
        idempotent_retries=0,
    ) as gw:
        assert isinstance(gw.state.proxy.engine, HttptoolsEngine)
        headers = stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)
        r = await gw.client.get("/api/timebank/echo?x=1", headers=headers)
        assert r.status_code == 200 and r.json()["query"] == "x=1"
        r = await gw.client.get("/api/timebank/stream?chunks=8", headers=headers)
        assert len(r.content) == 8 * 16384
        key = str(uuid.uuid4())
        for _ in range(2):
            r = await gw.client.post("/api/timebank/notes", json={"text": "t"}, headers={**headers, "Idempotency-Key": key})
            assert r.status_code == 201
        assert r.headers["idempotency-replayed"] == "true"
        r = await gw.client.get("/api/timebank/slow?s=2", headers=headers)
        assert r.status_code == 504 and r.json()["type"].endswith("gateway/upstream-timeout")
        r = await gw.client.get("/api/parking/anything", headers=headers)
        assert r.status_code == 503 and r.json()["type"].endswith("gateway/upstream-unavailable")


async def test_it_works_on_uvloop_as_the_gateway_is_served(upstream: Upstream) -> None:
    # uvicorn runs the gateway on uvloop, whose transports are not asyncio's classes.
    def on_uvloop() -> list[int]:
        async def exchange() -> list[int]:
            engine = HttptoolsEngine(max_connections=4)
            try:
                statuses = []
                for _ in range(3):
                    reply = await engine.send("GET", f"{upstream.url}/readyz", [], b"", 5)
                    assert await reply.read() == b'{"status":"ready"}'
                    statuses.append(reply.status)
                reply = await engine.send("GET", f"{upstream.url}/stream?chunks=40", [], b"", 5)
                assert len(await reply.read()) == 40 * 16384
                assert len(engine.pools[upstream.url].idle) == 1, "one connection, kept alive throughout"
                return statuses
            finally:
                await engine.aclose()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(exchange())

    assert await asyncio.to_thread(on_uvloop) == [200, 200, 200]
