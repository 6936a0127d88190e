"""The attacks of issue 13 on the gateway, kept as regression tests, against real sockets and servers.

Each test is an attack a resident (or anyone) made through the gateway's door, and the rule that
now holds against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn

from deploy.local.servers import free_port
from gateway.serve import SERVER_OPTIONS
from tests.gateway.conftest import (
    COMMUNITY,
    gateway_template,
    random_phone,
    register_resident,
    register_staff,
    resident_login,
    running_gateway,
    upstream,
    wait_until,
)
from tests.gateway.conftest import Upstream as UpstreamFixture
from tests.support.harness import RunningService
from tests.support.stack import TestStack

__all__ = ["gateway_template", "upstream"]  # fixtures, used by name


def resident(stack: TestStack) -> str:
    return stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)["Authorization"]


@asynccontextmanager
async def served(gw: RunningService) -> AsyncIterator[tuple[str, int]]:
    """The gateway on a real loopback port, served as `python -m gateway.serve` serves it."""
    port = free_port()
    config = uvicorn.Config(gw.app, host="127.0.0.1", port=port, lifespan="off", log_config=None, **SERVER_OPTIONS)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def answer_status(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split(b" ", 2)[1])


async def exchange(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection (closed after): the answer's status and body."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head_part, _, rest = answer.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), rest


def authorized(request_line: bytes, token: str) -> bytes:
    """A request head without a body, bearing `token`."""
    return request_line + b" HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer %b\r\nconnection: close\r\n\r\n" % token.encode()


def post_json(path: str, payload: dict[str, object], extra: bytes = b"") -> tuple[bytes, bytes]:
    body = json.dumps(payload).encode()
    head = b"POST %b HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%bconnection: close\r\n\r\n"
    return head % (path.encode(), len(body), extra), body


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


async def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_no_limit(stack: TestStack, gateway_template: str) -> None:
    async with running_gateway(stack, gateway_template, rate_limit_login="20/day") as gw, served(gw) as address:
        statuses = []
        for attempt in range(24):
            head, body = post_json(
                "/auth/token",
                {"grant_type": "password", "community": COMMUNITY, "username": f"nobody-{attempt}", "password": "guess"},
                b"x-forwarded-for: 198.51.100.%d\r\nforwarded: for=198.51.100.%d\r\n" % (attempt, attempt),
            )
            statuses.append((await exchange(address, head, body))[0])
        assert statuses == [401] * 20 + [429] * 4


async def test_forwarding_headers_reach_a_service_only_as_the_gateway_writes_them(
    stack: TestStack, gateway_template: str, upstream: UpstreamFixture
) -> None:
    spoofed = (
        b"x-forwarded-for: 198.51.100.7, 203.0.113.9\r\nx-forwarded-proto: https\r\n"
        b"x-forwarded-host: evil.example\r\nforwarded: for=198.51.100.7;proto=https\r\n"
    )
    head = b"GET /api/timebank/echo HTTP/1.1\r\nhost: gw.example\r\nauthorization: %b\r\n%bconnection: close\r\n\r\n"
    for trusted, client, proto in (([], "127.0.0.1", "http"), (["127.0.0.0/8"], "203.0.113.9", "https")):
        async with (
            running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}, trusted_proxies=trusted) as gw,
            served(gw) as address,
        ):
            status, body = await exchange(address, head % (resident(stack).encode(), spoofed))
            assert status == 200, body
            seen = json.loads(body)["headers"]
            assert (seen["x-forwarded-for"], seen["x-forwarded-proto"], seen["x-forwarded-host"]) == (client, proto, "gw.example")
            assert "forwarded" not in seen


async def test_the_right_password_works_after_another_clients_100_wrong_ones(stack: TestStack, gateway_template: str) -> None:
    async with (
        running_gateway(
            stack, gateway_template, rate_limit_login="20/minute", login_free_failures=5, trusted_proxies=["127.0.0.0/8"]
        ) as gw,
        served(gw) as address,
    ):
        username = f"steward-{uuid.uuid4().hex[:8]}"
        staff_id = await register_staff(gw, username, ["steward"])
        admin = stack.auth("an-admin", "property_admin", community=COMMUNITY)
        r = await gw.client.put(f"/auth/staff/{staff_id}/password", json={"password": "correct horse battery"}, headers=admin)
        assert r.status_code == 204, r.text
        grant = {"grant_type": "password", "community": COMMUNITY, "username": username}

        attacker = []
        for _ in range(100):
            head, body = post_json("/auth/token", {**grant, "password": "wrong horse"}, b"x-forwarded-for: 198.51.100.66\r\n")
            attacker.append(await exchange(address, head, body))
        statuses = [status for status, _ in attacker]
        # A few guesses, then ever longer waits (and the per-address window) for that client.
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses

        head, body = post_json("/auth/token", {**grant, "password": "correct horse battery"}, b"x-forwarded-for: 203.0.113.7\r\n")
        status, answer = await exchange(address, head, body)
        assert status == 200, answer
        assert json.loads(answer)["subject"] == staff_id


async def send_code(address: tuple[str, int], phone: str, client: str) -> int:
    head, body = post_json("/auth/otp", {"community": COMMUNITY, "phone": phone}, b"x-forwarded-for: %b\r\n" % client.encode())
    return (await exchange(address, head, body))[0]


async def test_one_time_code_sends_are_capped_per_day_per_phone_and_per_client(stack: TestStack, gateway_template: str) -> None:
    async with (
        running_gateway(
            stack, gateway_template, otp_sends_per_phone="3/day", otp_sends_per_ip="5/day", trusted_proxies=["127.0.0.0/8"]
        ) as gw,
        served(gw) as address,
    ):
        phone, other_phone, third_phone = random_phone(), random_phone(), random_phone()
        assert [await send_code(address, phone, "198.51.100.1") for _ in range(4)] == [202, 202, 202, 429]
        assert await send_code(address, phone, "198.51.100.2") == 429  # the phone's cap holds from anywhere
        assert await send_code(address, other_phone, "198.51.100.1") == 202
        assert await send_code(address, third_phone, "198.51.100.1") == 429  # the client's cap: its sixth send today
        assert await send_code(address, third_phone, "198.51.100.3") == 202


async def test_a_revoked_token_stays_revoked_across_a_redis_restart_and_nothing_answers_500(
    stack: TestStack, gateway_template: str, upstream: UpstreamFixture
) -> None:
    if stack.redis is None:
        pytest.skip("needs the embedded Redis, to restart it")
    async with (
        running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}) as gw,
        served(gw) as address,
    ):
        phone = random_phone()
        await register_resident(gw, phone)
        logged_out, other = (await resident_login(gw, phone))["access_token"], resident(stack).removeprefix("Bearer ")
        status, _ = await exchange(address, authorized(b"POST /auth/logout", logged_out))
        assert status == 204
        assert (await exchange(address, authorized(b"GET /api/timebank/notes", logged_out)))[0] == 401

        stack.redis.stop()
        try:
            # Without Redis: the deny-list is answered by the database (fail-closed), the rate
            # limits let calls through (fail-open), and what cannot run without Redis is a 503.
            assert (await exchange(address, authorized(b"GET /api/timebank/notes", logged_out)))[0] == 401
            assert (await exchange(address, authorized(b"GET /auth/me", logged_out)))[0] == 401
            assert (await exchange(address, authorized(b"GET /api/timebank/notes", other)))[0] == 200
            head, body = post_json("/auth/otp", {"community": COMMUNITY, "phone": phone})
            status, answer = await exchange(address, head, body)
            assert status == 503, answer
            assert json.loads(answer)["type"] == "urn:community:problem:gateway/store-unavailable"
        finally:
            stack.redis.start()

        # Redis is back, empty: the token is still refused, and the deny-list's copy refills by itself.
        assert (await exchange(address, authorized(b"GET /api/timebank/notes", logged_out)))[0] == 401
        deny = gw.state.verifier.deny

        async def refilled() -> bool:
            return bool(await gw.state.redis.exists(deny.FILLED)) and bool(await gw.state.redis.exists(deny.key(logged_out)))

        await wait_until(refilled)
        assert (await exchange(address, authorized(b"GET /api/timebank/notes", logged_out)))[0] == 401
        assert (await exchange(address, authorized(b"GET /api/timebank/notes", other)))[0] == 200
        head, body = post_json("/auth/otp", {"community": COMMUNITY, "phone": phone})
        assert (await exchange(address, head, body))[0] == 202


@pytest.mark.parametrize(
    "path", ["metrics", "openapi.json", "docs", "redoc", "%6detrics", "metrics/", "./openapi.json", "echo/../metrics", "/metrics"]
)
async def test_a_services_metrics_and_documents_are_not_reachable_through_the_gateway(
    stack: TestStack, gateway_template: str, upstream: UpstreamFixture, path: str
) -> None:
    async with (
        running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}) as gw,
        served(gw) as address,
    ):
        head = b"GET /api/timebank/%b HTTP/1.1\r\nhost: gw\r\nauthorization: %b\r\nconnection: close\r\n\r\n"
        status, body = await exchange(address, head % (path.encode(), resident(stack).encode()))
        assert status == 404, body
        assert json.loads(body)["type"] == "urn:community:problem:gateway/not-routed"
        # The service's own port still serves them.
        status, body = await exchange(
            ("127.0.0.1", int(upstream.url.rsplit(":", 1)[1])),
            b"GET /openapi.json HTTP/1.1\r\nhost: s\r\nconnection: close\r\n\r\n",
        )
        assert status == 200


async def stalled_login(address: tuple[str, int], path: bytes, *, chunked: bool) -> tuple[int, dict[str, object], float]:
    """A POST to one of the gateway's own routes whose body starts and then stops coming (a
    slowloris): the status, the problem and how long the gateway held the request."""
    body = json.dumps({"grant_type": "password", "community": COMMUNITY, "username": "someone", "password": "guess"}).encode()
    framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % len(body)
    first = body[: len(body) // 2]
    reader, writer = await asyncio.open_connection(*address)
    started = asyncio.get_running_loop().time()
    try:
        writer.write(b"POST %b HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n%b\r\n\r\n" % (path, framing))
        writer.write(b"%x\r\n%b\r\n" % (len(first), first) if chunked else first)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)  # the gateway answers and closes
    finally:
        writer.close()
    held = asyncio.get_running_loop().time() - started
    head, _, problem = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(problem), held


async def test_a_slowloris_on_the_gateways_own_routes_meets_408_and_others_are_served(
    stack: TestStack, gateway_template: str
) -> None:
    async with running_gateway(stack, gateway_template, body_read_timeout_s=1.0) as gw, served(gw) as address:
        stalled = [
            asyncio.create_task(stalled_login(address, path, chunked=chunked))
            for path in (b"/auth/token", b"/auth/otp", b"/auth/logout")
            for chunked in (True, False)
            for _ in range(2)
        ]
        # While they hang, an honest login attempt is answered at once.
        head, body = post_json(
            "/auth/token", {"grant_type": "password", "community": COMMUNITY, "username": "nobody", "password": "guess"}
        )
        assert (await exchange(address, head, body))[0] == 401
        for status, problem, held in await asyncio.gather(*stalled):
            assert (status, problem["type"], problem["status"]) == (408, "urn:community:problem:gateway/body-timeout", 408)
            assert 1.0 <= held < 10.0  # the body's own clock, not the head's or anything longer
