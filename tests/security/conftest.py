"""Fixtures: one security service per test module (and a second replica on the same database for
the race tests); each test gets its own community, with residents registered the way property
announces them (its event on the real broker, through security's consumer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from services.security.app import create_app
from services.security.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack, new_namespace

# Sweeps and the purge are called by the tests at the moment they choose; the jobs stay out of the way.
QUIET = {"sweep_every_s": 3600.0, "purge_every_s": 3600.0}


@pytest.fixture(scope="module")
async def security(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "security", create_app, Settings, **QUIET) as svc:
        yield svc


@pytest.fixture(scope="module")
async def replicas(stack: TestStack) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """Two replicas of the service on one database and one Kafka namespace."""
    url = await stack.fresh_database("security")
    namespace = new_namespace()
    try:
        async with (
            run_service(stack, "security", create_app, Settings, database_url=url, namespace=namespace, **QUIET) as one,
            run_service(stack, "security", create_app, Settings, database_url=url, namespace=namespace, **QUIET) as two,
        ):
            yield one, two
    finally:
        await stack.drop_database(url)


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

    @property
    def admin(self) -> dict[str, str]:
        return self.auth("admin-1", "property_admin")

    @property
    def staff(self) -> dict[str, str]:
        return self.auth("steward-1", "steward")

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.svc.state.sessionmaker() as session, session.begin():
            return list((await session.execute(text(sql), {"community": self.id, **params})).all())

    async def publish_property(self, type_: str, key: str, **data: Any) -> None:
        event = CloudEvent(type=type_, source="/services/property", key=key, data={"community": self.id, **data})
        await publish_raw(self.svc.settings, self.svc.settings.kafka_namespace + "property.events", event)

    async def resident(self, resident_id: str, household_id: str = "h1", building_id: str = "b1") -> dict[str, str]:
        """Register a resident as property does, wait until security knows them, return their auth."""
        await self.publish_property(
            "property.resident.registered.v1",
            resident_id,
            resident_id=resident_id,
            household_id=household_id,
            building_id=building_id,
            name="王秀英",
            phone="13800000000",
            roles=["resident"],
        )

        async def known() -> bool:
            return bool(
                await self.rows("SELECT 1 FROM residents WHERE community = :community AND resident_id = :r", r=resident_id)
            )

        await wait_until(known)
        return self.auth(resident_id, "resident")

    def dev(self, name: str) -> str:
        """A device's id: machine client ids are unique across communities, so each test's carry its community."""
        return f"{self.id}-{name}"

    async def device(self, name: str, kind: str = "door", building_id: str = "b1", **extra: Any) -> dict[str, str]:
        body = {"id": self.dev(name), "building_id": building_id, "kind": kind, "name": name, **extra}
        r = await self.client.post("/devices", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return self.auth(self.dev(name), "gate_device")

    async def issue(self, who: dict[str, str], hours: float = 4, starts_in: float = -0.1, **extra: Any) -> dict[str, Any]:
        start = datetime.now(UTC) + timedelta(hours=starts_in)
        body = {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=hours)).isoformat(), **extra}
        r = await self.client.post("/passes", json=body, headers=who)
        assert r.status_code == 201, r.text
        return dict(r.json())


def community_on(stack: TestStack, svc: RunningService) -> Community:
    return Community(stack=stack, svc=svc, id=f"c-{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def community(stack: TestStack, security: RunningService) -> Community:
    return community_on(stack, security)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def access(event_id: str, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    body = {
        "event_id": event_id,
        "direction": "in",
        "credential_kind": "card",
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
    }
    return {**body, **extra}
