"""Fixtures: one notify service per test module; each test gets its own community and helpers to
publish other services' events onto the real broker and read what notify made of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from services.notify.app import create_app
from services.notify.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
async def notify(stack: TestStack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningService]:
    sms_log = tmp_path_factory.mktemp("sms") / "sms.log"
    async with run_service(stack, "notify", create_app, Settings, sms_outbox_path=str(sms_log), deliver_every_s=0.1) as svc:
        yield svc


def event(community: str, type_: str, key: str, **data: Any) -> CloudEvent:
    service = type_.split(".", 1)[0]
    return CloudEvent(type=type_, source=f"/services/{service}", key=key, data={"community": community, **data})


@dataclass
class Community:
    stack: TestStack
    svc: RunningService
    id: str

    def auth(self, subject: str, *roles: str) -> dict[str, str]:
        return self.stack.auth(subject, *roles, community=self.id)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.svc.client

    def event(self, type_: str, key: str, **data: Any) -> CloudEvent:
        return event(self.id, type_, key, **data)

    async def publish(self, ev: CloudEvent) -> str:
        topic = ev.type.split(".", 1)[0] + ".events"
        await publish_raw(self.svc.settings, self.svc.settings.kafka_namespace + topic, ev)
        return ev.id

    async def inbox(self, person: str, *roles: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.client.get(
            "/notifications", params={"limit": 200, **params}, headers=self.auth(person, *(roles or ("resident",)))
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.svc.state.sessionmaker() as session, session.begin():
            return list((await session.execute(text(sql), {"community": self.id, **params})).all())

    async def wait_for_inbox(self, person: str, count: int, *roles: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            nonlocal found
            found = await self.inbox(person, *roles)
            return len(found) >= count

        await wait_until(enough)
        return found

    async def register_resident(self, resident_id: str, phone: str) -> None:
        await self.publish(
            self.event(
                "property.resident.registered.v1",
                resident_id,
                resident_id=resident_id,
                household_id="h1",
                building_id="b1",
                name="王秀英",
                phone=phone,
                roles=["resident"],
            )
        )

        async def known() -> bool:
            return bool(await self.rows("SELECT 1 FROM people WHERE community = :community AND person_id = :p", p=resident_id))

        await wait_until(known)


@pytest.fixture
async def community(stack: TestStack, notify: RunningService) -> Community:
    return Community(stack=stack, svc=notify, id=f"c-{uuid.uuid4().hex[:10]}")


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def now() -> str:
    return datetime.now(UTC).isoformat()
