"""Event streams through the gateway (gateway/streams.py): notify's live stream over real HTTP, the
gateway itself served by uvicorn as in production (`python -m gateway.serve`'s protocol), two notify
replicas on one database. Passed on as it arrives, resumable on another replica, outliving the
route's timeout, bounded per person, closed upstream when the client goes, and never a fault."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from deploy.local.servers import free_port
from gateway.serve import SERVER_OPTIONS
from services.notify.app import create_app as create_notify
from services.notify.settings import Settings as NotifySettings
from services.notify.stream import StreamSlots as NotifySlots
from tests.gateway.conftest import COMMUNITY, running_gateway, wait_until
from tests.notify.test_stream import Replica, first_comment, frames, notifications_from, serve, tell
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@asynccontextmanager
async def serve_gateway(app: FastAPI) -> AsyncIterator[str]:
    """The gateway on a real loopback port, on its own HTTP protocol (an ASGI test client buffers)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", timeout_graceful_shutdown=1, **SERVER_OPTIONS
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_until(started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def notify_pair(stack: TestStack) -> AsyncIterator[tuple[Replica, Replica]]:
    # A long heartbeat: what arrives came because it was made, not because a heartbeat looked.
    async with run_service(stack, "notify", create_notify, NotifySettings, heartbeat_s=30.0) as a:
        async with run_service(
            stack, "notify", create_notify, NotifySettings, database_url=a.database_url, heartbeat_s=30.0
        ) as b:
            async with serve(a.app) as a_url, serve(b.app) as b_url:
                yield Replica(a, a_url), Replica(b, b_url)


@pytest.fixture(scope="module")
async def quick_notify(stack: TestStack) -> AsyncIterator[Replica]:
    async with run_service(stack, "notify", create_notify, NotifySettings, heartbeat_s=0.1) as svc:
        async with serve(svc.app) as url:
            yield Replica(svc, url)


@asynccontextmanager
async def gateway_to(
    stack: TestStack, template: str, notify_url: str, database_url: str | None = None, **overrides: object
) -> AsyncIterator[tuple[RunningService, str]]:
    async with running_gateway(stack, template, database_url=database_url, upstreams={"notify": notify_url}, **overrides) as gw:
        async with serve_gateway(gw.app) as url:
            yield gw, url


async def test_a_client_through_the_gateway_resumes_on_another_replica_with_every_missed_notification_once_in_order(
    stack: TestStack, gateway_template: str, notify_pair: tuple[Replica, Replica]
) -> None:
    a, b = notify_pair
    me = str(uuid.uuid4())
    auth = stack.auth(me, "resident", community=COMMUNITY)
    # Two gateway replicas on one database, each routing notify to a different notify replica: the
    # reconnect reaches another gateway and another notify, as behind a load balancer.
    async with gateway_to(stack, gateway_template, a.url) as (gw_a, url_a):
        async with gateway_to(stack, gateway_template, b.url, database_url=gw_a.database_url) as (_, url_b):
            async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
                async with http.stream("GET", url_a + "/api/notify/stream", headers=auth) as response:
                    assert response.status_code == 200, await response.aread()
                    assert response.headers["content-type"].startswith("text/event-stream")
                    assert "content-length" not in response.headers
                    stream = frames(response)
                    # Each arrives alone, a few hundred bytes: a gateway that held the answer until
                    # 64 KiB or its end would deliver nothing here.
                    await tell(a.svc, COMMUNITY, me, 1)
                    [one] = await notifications_from(stream, 1)
                    await tell(b.svc, COMMUNITY, me, 2)
                    [two] = await notifications_from(stream, 1)
                assert [one.id, two.id] == ["1", "2"]

                # Away: three more are made, on either replica.
                for points, replica in ((3, a), (4, b), (5, a)):
                    await tell(replica.svc, COMMUNITY, me, points)

                resume = {**auth, "Last-Event-ID": "2"}
                async with http.stream("GET", url_b + "/api/notify/stream", headers=resume) as response:
                    assert response.status_code == 200
                    stream = frames(response)
                    missed = await notifications_from(stream, 3)
                    await tell(a.svc, COMMUNITY, me, 6)  # live, made on the replica the client left
                    live = await notifications_from(stream, 1)
    got = missed + live
    assert [f.id for f in got] == ["3", "4", "5", "6"]
    assert [f.notification["body"] for f in got] == [f"您获得 {n} 积分。" for n in (3, 4, 5, 6)]


async def test_a_quiet_stream_outlives_the_route_timeout_and_its_heartbeats_pass_through(
    stack: TestStack, gateway_template: str, quick_notify: Replica
) -> None:
    me = str(uuid.uuid4())
    auth = stack.auth(me, "resident", community=COMMUNITY)
    # Short for ordinary answers, yet long enough for a stream's headers on a loaded machine.
    timeout_s = 1.5
    async with gateway_to(stack, gateway_template, quick_notify.url, default_timeout_s=timeout_s) as (gw, url):
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
            async with http.stream("GET", url + "/api/notify/stream", headers=auth) as response:
                assert response.status_code == 200
                stream = frames(response)
                loop = asyncio.get_running_loop()
                opened = loop.time()
                beats = 0
                # Heartbeats keep coming well past the route's timeout (ordinary answers get 1.5 s).
                while loop.time() - opened < 3 * timeout_s:
                    assert await asyncio.wait_for(first_comment(stream), 10) == "heartbeat"
                    beats += 1
                await tell(quick_notify.svc, COMMUNITY, me, 7)
                [late] = await notifications_from(stream, 1)
        upstream = gw.state.proxy.upstreams["notify"]
    assert beats >= 3 and late.notification["body"] == "您获得 7 积分。"
    assert upstream.breaker.failures == 0 and upstream.breaker.state == "closed"


async def test_a_person_holds_only_a_few_streams_and_a_client_leaving_closes_its_upstream(
    stack: TestStack, gateway_template: str, quick_notify: Replica
) -> None:
    me, neighbour = str(uuid.uuid4()), str(uuid.uuid4())
    auth = stack.auth(me, "resident", community=COMMUNITY)
    notify_slots: NotifySlots = quick_notify.svc.state.stream_slots
    redis = quick_notify.svc.state.redis
    open_upstream = notify_slots.key((COMMUNITY, me))

    async def upstream_streams() -> int:
        return int(await redis.zcard(open_upstream))

    async with gateway_to(stack, gateway_template, quick_notify.url, stream_max_per_user=2) as (gw, url):
        proxy = gw.state.proxy
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
            for _ in range(3):  # open and leave, more times than the breaker's threshold would allow
                async with http.stream("GET", url + "/api/notify/stream", headers=auth) as one:
                    reader = frames(one)
                    assert await asyncio.wait_for(first_comment(reader), 10) == "heartbeat"
                    async with http.stream("GET", url + "/api/notify/stream", headers=auth) as two:
                        assert two.status_code == 200
                        async with http.stream("GET", url + "/api/notify/stream", headers=auth) as refused:
                            assert refused.status_code == 429
                            assert json.loads(await refused.aread())["type"].endswith("gateway/too-many-streams")
                        theirs_auth = stack.auth(neighbour, "resident", community=COMMUNITY)
                        async with http.stream("GET", url + "/api/notify/stream", headers=theirs_auth) as theirs:
                            assert theirs.status_code == 200  # the bound is per person
                        assert await upstream_streams() == 2

                # The client went: the gateway closed both upstream connections, so notify's streams
                # ended and gave their slots back; the gateway's own slots came back too.
                async def all_closed() -> bool:
                    return await upstream_streams() == 0 and proxy.stream_slots.open == 0

                await wait_until(all_closed)
        upstream = proxy.upstreams["notify"]
        assert upstream.breaker.failures == 0 and upstream.breaker.state == "closed"


async def test_a_refusal_on_a_stream_route_is_relayed_as_the_services_problem(
    stack: TestStack, gateway_template: str, quick_notify: Replica
) -> None:
    """notify's own bound (3 per person across replicas) still answers past a laxer gateway."""
    me = str(uuid.uuid4())
    auth = stack.auth(me, "resident", community=COMMUNITY)
    async with gateway_to(stack, gateway_template, quick_notify.url, stream_max_per_user=10) as (gw, url):
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
            async with (
                http.stream("GET", url + "/api/notify/stream", headers=auth) as s1,
                http.stream("GET", url + "/api/notify/stream", headers=auth) as s2,
                http.stream("GET", url + "/api/notify/stream", headers=auth) as s3,
            ):
                assert {s1.status_code, s2.status_code, s3.status_code} == {200}
                async with http.stream("GET", url + "/api/notify/stream", headers=auth) as refused:
                    assert refused.status_code == 429
                    body = json.loads(await refused.aread())
                    assert body["type"].endswith("notify/too-many-streams")
                    assert body["instance"] == "/api/notify/stream"

            # The refused stream's gateway slot came back at once; the three others as they closed.
            async def closed() -> bool:
                return bool(gw.state.proxy.stream_slots.open == 0)

            await wait_until(closed)
