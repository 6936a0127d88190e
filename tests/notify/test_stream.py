"""The live stream over real HTTP (uvicorn) from two replicas sharing one database: resumable with
Last-Event-ID on either replica, fanned out by LISTEN/NOTIFY, with heartbeats and a per-person bound."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from deploy.local.servers import free_port
from services.kit.envelope import CloudEvent
from services.notify import inbox, notifications
from services.notify.app import create_app
from services.notify.settings import Settings
from tests.notify.conftest import event, now, wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs (the harness's) on a real loopback port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
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


@dataclass
class Replica:
    svc: RunningService
    url: str


@pytest.fixture(scope="module")
async def replicas(stack: TestStack) -> AsyncIterator[tuple[Replica, Replica]]:
    # A long heartbeat: a live notification that arrives well before it was woken by LISTEN/NOTIFY.
    async with run_service(stack, "notify", create_app, Settings, heartbeat_s=30.0) as a:
        async with run_service(stack, "notify", create_app, Settings, database_url=a.database_url, heartbeat_s=30.0) as b:
            async with serve(a.app) as a_url, serve(b.app) as b_url:
                yield Replica(a, a_url), Replica(b, b_url)


@pytest.fixture(scope="module")
async def quick(stack: TestStack) -> AsyncIterator[Replica]:
    async with run_service(stack, "notify", create_app, Settings, heartbeat_s=0.2, max_streams_per_user=2) as svc:
        async with serve(svc.app) as url:
            yield Replica(svc, url)


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: str | None = None

    @property
    def notification(self) -> dict[str, Any]:
        return dict(json.loads(self.data))


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Parse a text/event-stream into frames (a comment line is a frame of its own)."""
    frame = Frame()
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield Frame(comment=line[1:].strip())
        elif line == "":
            if frame.data or frame.id:
                yield frame
            frame = Frame()
        else:
            name, _, value = line.partition(": ")
            if name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data += value


async def notifications_from(stream: AsyncIterator[Frame], count: int, timeout: float = 10) -> list[Frame]:
    got: list[Frame] = []

    async def read() -> None:
        async for frame in stream:
            if frame.event == "notification":
                got.append(frame)
                if len(got) == count:
                    return

    await asyncio.wait_for(read(), timeout)
    return got


async def first_comment(stream: AsyncIterator[Frame]) -> str | None:
    async for frame in stream:
        if frame.comment:
            return frame.comment
    return None


async def tell(svc: RunningService, community: str, resident: str, points: int) -> None:
    data = {"grant_id": f"g-{uuid.uuid4().hex[:8]}", "resident_id": resident, "points": points}
    ev: CloudEvent = event(
        community, "governance.points.granted.v1", "g", **data, source="award", trigger="award", granted_at=now()
    )
    async with svc.state.sessionmaker() as session, session.begin():
        assert await notifications.notify_event(session, svc.settings, ev) == 1  # type: ignore[arg-type]


async def test_a_client_reconnecting_to_another_replica_gets_every_missed_notification_once_in_order(
    stack: TestStack, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    community = f"c-{uuid.uuid4().hex[:8]}"
    me = stack.auth("res-1", "resident", community=community)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        async with http.stream("GET", a.url + "/stream", headers=me) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            stream = frames(response)
            await tell(a.svc, community, "res-1", 1)
            await tell(b.svc, community, "res-1", 2)  # made on the other replica: fanned out by LISTEN
            first = await notifications_from(stream, 2)
        assert [f.id for f in first] == ["1", "2"] and [f.notification["body"] for f in first] == [
            "您获得 1 积分。",
            "您获得 2 积分。",
        ]

        # Away: three more are made, on either replica.
        for points, replica in ((3, a), (4, b), (5, a)):
            await tell(replica.svc, community, "res-1", points)

        async with http.stream("GET", b.url + "/stream", headers={**me, "Last-Event-ID": "2"}) as response:
            stream = frames(response)
            missed = await notifications_from(stream, 3)
            await tell(a.svc, community, "res-1", 6)  # live, made on the replica the client left
            live = await notifications_from(stream, 1)
            await tell(b.svc, community, "res-1", 7)
            last = await notifications_from(stream, 1)
    got = missed + live + last
    assert [f.id for f in got] == ["3", "4", "5", "6", "7"]
    assert [f.notification["seq"] for f in got] == [3, 4, 5, 6, 7]


async def test_another_persons_or_communitys_notifications_never_reach_a_stream(
    stack: TestStack, replicas: tuple[Replica, Replica]
) -> None:
    a, _ = replicas
    community = f"c-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        async with http.stream(
            "GET", a.url + "/stream", headers=stack.auth("res-1", "resident", community=community)
        ) as response:
            stream = frames(response)
            await tell(a.svc, community, "res-2", 1)  # a neighbour
            await tell(a.svc, f"{community}-x", "res-1", 1)  # the same id in another community
            await tell(a.svc, community, "res-1", 9)
            [mine] = await notifications_from(stream, 1)
    assert mine.notification["body"] == "您获得 9 积分。" and mine.id == "1"


async def test_a_stream_sends_heartbeats_and_a_person_may_hold_only_a_few(stack: TestStack, quick: Replica) -> None:
    community = f"c-{uuid.uuid4().hex[:8]}"
    me = stack.auth("res-1", "resident", community=community)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        async with http.stream("GET", quick.url + "/stream", headers=me) as one:
            # Keep the reader referenced: a collected generator closes the response, and so the stream.
            reader = frames(one)
            assert await asyncio.wait_for(first_comment(reader), 10) == "heartbeat"
            async with http.stream("GET", quick.url + "/stream", headers=me) as two:
                assert two.status_code == 200
                async with http.stream("GET", quick.url + "/stream", headers=me) as refused:
                    assert refused.status_code == 429
                    assert json.loads(await refused.aread())["type"].endswith("notify/too-many-streams")
                neighbour = stack.auth("res-2", "resident", community=community)
                async with http.stream("GET", quick.url + "/stream", headers=neighbour) as theirs:
                    assert theirs.status_code == 200  # the bound is per person
            assert await asyncio.wait_for(first_comment(reader), 10) == "heartbeat"  # the first is still open
        # Both closed: their slots come back.

        async def opens() -> bool:
            async with http.stream("GET", quick.url + "/stream", headers=me) as again:
                return again.status_code == 200

        await wait_until(opens)


async def test_a_stream_ends_when_its_token_expires(stack: TestStack, quick: Replica) -> None:
    community = f"c-{uuid.uuid4().hex[:8]}"
    # A token's expiry is in whole seconds: 3 s leaves at least 2 for the stream to open on a loaded machine.
    short = {"Authorization": f"Bearer {stack.token('res-1', 'resident', community=community, ttl_s=3)}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        async with http.stream("GET", quick.url + "/stream", headers=short) as response:
            assert response.status_code == 200

            async def drain() -> int:
                return len([frame async for frame in frames(response)])

            assert await asyncio.wait_for(drain(), 15) >= 1  # heartbeats, then the end of the stream


async def test_a_live_notification_is_sent_as_its_commit_carried_it_and_a_gap_is_read_from_the_database(
    stack: TestStack, replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    community = f"c-{uuid.uuid4().hex[:8]}"
    reads: list[int] = []
    real_since = inbox.since

    async def counted_since(session: Any, in_community: str, recipient: str, after: int, limit: int = 500) -> list[Any]:
        rows = await real_since(session, in_community, recipient, after, limit)
        if in_community == community:
            reads.append(after)
        return rows

    monkeypatch.setattr(inbox, "since", counted_since)

    async def opened() -> bool:
        return reads == [0]

    async def tell_of(svc: RunningService, ev: CloudEvent) -> int:
        async with svc.state.sessionmaker() as session, session.begin():
            return await notifications.notify_event(session, svc.settings, ev)  # type: ignore[arg-type]

    def granted(points: int) -> CloudEvent:
        data = {"grant_id": f"g-{uuid.uuid4().hex[:8]}", "resident_id": "res-1", "points": points}
        return event(community, "governance.points.granted.v1", "g", **data, source="award", trigger="award", granted_at=now())

    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        me = stack.auth("res-1", "resident", community=community)
        async with http.stream("GET", a.url + "/stream", headers=me) as response:
            stream = frames(response)
            await wait_until(opened)  # the opening read found nothing: from here on, frames
            await tell_of(a.svc, granted(1))
            await tell_of(b.svc, granted(2))  # made on the other replica
            live = await notifications_from(stream, 2)
            assert reads == [0]  # both sent as their commits carried them, without a read
            repeated = granted(3)
            assert await tell_of(a.svc, repeated) == 1
            # The same event told again past the inbox takes a number and makes nothing: a gap.
            assert await tell_of(b.svc, repeated) == 0
            assert await tell_of(a.svc, granted(4)) == 1
            after_gap = await notifications_from(stream, 2)
    assert [f.id for f in live + after_gap] == ["1", "2", "3", "5"]
    assert [f.notification["body"] for f in live + after_gap] == [f"您获得 {n} 积分。" for n in (1, 2, 3, 4)]
    assert reads[:2] == [0, 3]  # the gap after 3 sent the stream to the database
