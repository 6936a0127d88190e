"""Fixtures: one governance service per test module; each test gets its own community."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.governance.app import create_app
from services.governance.settings import Settings
from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from services.kit.tables import outbox
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
async def gov(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "governance", create_app, Settings, db_pool_size=40) as svc:
        yield svc


@dataclass
class Community:
    """One test's community: its id, staff tokens and helpers to act as them."""

    stack: TestStack
    svc: RunningService
    id: str

    def auth(self, subject: str, *roles: str) -> dict[str, str]:
        return self.stack.auth(subject, *roles, community=self.id)

    @property
    def worker(self) -> dict[str, str]:
        return self.auth("worker-1", "community_worker")

    @property
    def worker2(self) -> dict[str, str]:
        return self.auth("worker-2", "community_worker")

    @property
    def steward(self) -> dict[str, str]:
        return self.auth("steward-1", "steward")

    def resident(self, resident_id: str) -> dict[str, str]:
        return self.auth(resident_id, "resident")

    @property
    def client(self) -> httpx.AsyncClient:
        return self.svc.client

    async def fund(self, points: int) -> None:
        r = await self.client.post("/budget/fundings", json={"points": points}, headers=self.worker)
        assert r.status_code == 200, r.text

    async def rule(self, **body: Any) -> dict[str, Any]:
        body.setdefault("code", f"r-{uuid.uuid4().hex[:8]}")
        body.setdefault("name", "垃圾分类签到")
        body.setdefault("trigger", "checkin.garbage_sorting")
        body.setdefault("points", 10)
        r = await self.client.post("/rules", json=body, headers=self.worker)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def reward(self, **body: Any) -> dict[str, Any]:
        body.setdefault("code", f"w-{uuid.uuid4().hex[:8]}")
        body.setdefault("name", "环保袋")
        body.setdefault("kind", "item")
        body.setdefault("points", 10)
        if body["kind"] == "item":
            body.setdefault("stock", 1000)
        r = await self.client.post("/rewards", json=body, headers=self.worker)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def award(self, resident_id: str, points: int, reason: str = "志愿服务表彰") -> dict[str, Any]:
        r = await self.client.post(
            "/awards", json={"resident_id": resident_id, "points": points, "reason": reason}, headers=self.worker
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def give(self, resident_id: str, points: int) -> None:
        """Credit points by awards small enough to need no second worker."""
        while points > 0:
            chunk = min(points, 50)
            assert (await self.award(resident_id, chunk))["status"] == "applied"
            points -= chunk

    async def points(self, resident_id: str) -> dict[str, Any]:
        r = await self.client.get("/me/points", headers=self.resident(resident_id))
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def statement(self, resident_id: str) -> list[dict[str, Any]]:
        r = await self.client.get("/me/statement", params={"limit": 200}, headers=self.resident(resident_id))
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def budget(self) -> dict[str, Any]:
        r = await self.client.get("/budget", headers=self.worker)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def publish(self, topic: str, type_: str, key: str, data: dict[str, Any], event_id: str | None = None) -> str:
        event = CloudEvent(
            type=type_,
            source=f"/services/{topic.split('.')[0]}",
            key=key,
            data={"community": self.id, **data},
            **({"id": event_id} if event_id else {}),
        )
        await publish_raw(self.svc.settings, self.svc.settings.kafka_namespace + topic, event)
        return event.id

    async def outbox_events(self, type_: str) -> list[dict[str, Any]]:
        async with self.svc.state.sessionmaker() as session, session.begin():
            rows = (await session.execute(select(outbox.c.data).where(outbox.c.type == type_))).scalars().all()
        return [dict(d) for d in rows if d.get("community") == self.id]


@pytest.fixture
async def community(stack: TestStack, gov: RunningService) -> Community:
    return Community(stack=stack, svc=gov, id=f"c-{uuid.uuid4().hex[:10]}")


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30, interval: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def consumers_ready(svc: RunningService) -> None:
    for consumer in svc.state.consumers:
        await asyncio.wait_for(consumer.ready.wait(), 30)


def problem_type(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return str(r.json()["type"]).removeprefix("urn:community:problem:")
