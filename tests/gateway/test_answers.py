"""What a caller gets back: headers of proxied answers, and the gateway's own redirects (none)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from gateway.limits import LimitedHttpToolsProtocol
from tests.gateway.conftest import COMMUNITY, running_gateway
from tests.gateway.upstream import raw_server, serve
from tests.support.harness import RunningService
from tests.support.stack import TestStack


def resident(stack: TestStack) -> dict[str, str]:
    return stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)


async def test_a_services_redirect_points_at_the_gateways_path_not_the_services_address(
    stack: TestStack, gateway: RunningService
) -> None:
    r = await gateway.client.get("/api/timebank/notes/?page=2", headers=resident(stack))
    assert r.status_code == 307, r.text
    assert r.headers["location"] == "/api/timebank/notes?page=2"
    assert "127.0.0.1" not in r.headers["location"]


async def test_the_gateways_own_routes_do_not_redirect_on_a_trailing_slash(stack: TestStack, gateway: RunningService) -> None:
    r = await gateway.client.get("/auth/me/", headers={**resident(stack), "Host": "evil.example"})
    assert r.status_code == 404
    assert "location" not in r.headers


async def named_in_connection(head: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\nconnection: x-hop-secret, keep-alive\r\nkeep-alive: timeout=5\r\n"
        b"x-hop-secret: for-the-gateway-only\r\nx-kept: yes\r\ncontent-length: 2\r\n\r\nok"
    )
    await writer.drain()
    return True


async def test_headers_the_upstream_names_in_connection_are_not_relayed(stack: TestStack, gateway_template: str) -> None:
    async with (
        raw_server(named_in_connection) as server,
        running_gateway(stack, gateway_template, upstreams={"timebank": server.url}) as gw,
    ):
        for extra in ({}, {"Idempotency-Key": str(uuid.uuid4())}):
            r = await gw.client.post("/api/timebank/anything", headers={**resident(stack), **extra}, content=b"{}")
            assert (r.status_code, r.text) == (200, "ok")
            assert r.headers["x-kept"] == "yes"
            assert "x-hop-secret" not in r.headers and "keep-alive" not in r.headers


async def test_a_proxied_answer_carries_one_date_and_one_server_header(stack: TestStack, gateway: RunningService) -> None:
    # Served as deployed: the gateway's uvicorn sets Date and Server on every answer, and so does
    # the service's; only the gateway's reach the caller.
    async with (
        serve(gateway.app, lifespan=False, http=LimitedHttpToolsProtocol) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        for path in ("/api/timebank/echo", "/api/timebank/stream?chunks=8", "/auth/me"):
            r = await client.get(path, headers=resident(stack))
            assert r.status_code == 200, (path, r.text)
            assert len(r.headers.get_list("date")) == 1, path
            assert r.headers.get_list("server") == ["uvicorn"], path
