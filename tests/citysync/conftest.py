"""One running citysync per test module; each test uses its own community, so feeds never mix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.citysync import feeds
from services.citysync.app import create_app, keys_from
from services.citysync.domain import SCENES
from services.citysync.feeds import Keys
from services.citysync.settings import Settings
from services.kit.envelope import CloudEvent
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
async def citysync(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "citysync", create_app, Settings, db_pool_size=40, stats_every_s=3600.0) as svc:
        yield svc


def keys_of(svc: RunningService) -> Keys:
    settings = svc.settings
    assert isinstance(settings, Settings)
    return keys_from(settings)


async def ingest_all(svc: RunningService, events: Iterable[CloudEvent], chunk: int = 500) -> list[int]:
    """Feed events straight to the consuming function (no broker), `chunk` per transaction, for speed."""
    keys = keys_of(svc)
    seqs: list[int] = []
    batch: list[CloudEvent] = []

    async def flush() -> None:
        async with svc.state.sessionmaker() as session, session.begin():
            for event in batch:
                seq = await feeds.ingest(session, keys, event)
                if seq is not None:
                    seqs.append(seq)
        batch.clear()

    for event in events:
        batch.append(event)
        if len(batch) >= chunk:
            await flush()
    if batch:
        await flush()
    return seqs


async def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@dataclass
class Community:
    """A fresh community with a community worker who can register consumers and grant feeds."""

    stack: TestStack
    svc: RunningService
    id: str = field(default_factory=lambda: f"c-{uuid.uuid4().hex[:10]}")
    worker_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def worker(self) -> dict[str, str]:
        return self.stack.auth(self.worker_id, "community_worker", community=self.id)

    def consumer_auth(self, consumer_id: str) -> dict[str, str]:
        return self.stack.auth(consumer_id, "city_sync", community=self.id)

    async def register(self, consumer_id: str, scenes: Iterable[str] = SCENES) -> dict[str, str]:
        """Register a consumer, grant it `scenes`; returns its auth headers."""
        r = await self.svc.client.post("/consumers", json={"id": consumer_id, "name": f"平台 {consumer_id}"}, headers=self.worker)
        assert r.status_code == 201, r.text
        for scene in scenes:
            g = await self.svc.client.post(f"/consumers/{consumer_id}/grants", json={"scene": scene}, headers=self.worker)
            assert g.status_code == 201, g.text
        return self.consumer_auth(consumer_id)

    async def pull_all(self, headers: dict[str, str], scene: str, limit: int = 1000, after: str = "0") -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        while True:
            r = await self.svc.client.get(f"/feeds/{scene}", params={"after": after, "limit": limit}, headers=headers)
            assert r.status_code == 200, r.text
            page = r.json()
            records.extend(page["records"])
            after = page["next_cursor"]
            if not page["has_more"]:
                return records


@pytest.fixture
def community(stack: TestStack, citysync: RunningService) -> Community:
    return Community(stack, citysync)
