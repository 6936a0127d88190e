"""One running parking service per test module; each test uses its own community, so tests never see
each other's spots or bookings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.parking.app import create_app
from services.parking.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
async def parking(stack: TestStack) -> AsyncIterator[RunningService]:
    # The race tests send hundreds of requests at once to the in-process app: a large pool.
    async with run_service(
        stack, "parking", create_app, Settings, db_pool_size=50, expire_holds_every_s=3600.0, remind_bookings_every_s=3600.0
    ) as svc:
        yield svc


def next_half_hour(offset: timedelta = timedelta(0)) -> datetime:
    now = datetime.now(UTC) + timedelta(hours=1)
    return now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0) + offset


@dataclass
class Community:
    """A fresh community with an owner, a booker, a steward and a gate device."""

    stack: TestStack
    svc: RunningService
    id: str
    owner: str
    booker: str
    steward: str
    device: str

    def auth(self, subject: str, *roles: str) -> dict[str, str]:
        return self.stack.auth(subject, *roles, community=self.id)

    @property
    def owner_h(self) -> dict[str, str]:
        return self.auth(self.owner, "resident")

    @property
    def booker_h(self) -> dict[str, str]:
        return self.auth(self.booker, "resident")

    @property
    def steward_h(self) -> dict[str, str]:
        return self.auth(self.steward, "steward")

    @property
    def gate_h(self) -> dict[str, str]:
        return self.auth(self.device, "gate_device")

    async def spot(self, *, kind: str = "private", code: str | None = None, **extra: Any) -> str:
        headers = self.owner_h if kind == "private" else self.steward_h
        body = {"kind": kind, "code": code or uuid.uuid4().hex[:8], "location": "B1 地下一层", **extra}
        r = await self.svc.client.post("/spots", json=body, headers=headers)
        assert r.status_code == 201, r.text
        spot_id = str(r.json()["id"])
        if kind == "private":
            r = await self.svc.client.post(f"/spots/{spot_id}/verification", json={"approve": True}, headers=self.steward_h)
            assert r.status_code == 200, r.text
        return spot_id

    async def window(
        self, spot_id: str, start: datetime, end: datetime, *, price: int = 500, buffer: int = 0, kind: str = "private"
    ) -> dict[str, Any]:
        headers = self.owner_h if kind == "private" else self.steward_h
        r = await self.svc.client.post(
            f"/spots/{spot_id}/windows",
            headers=headers,
            json={
                "kind": "one_off",
                "starts_at": start.isoformat(),
                "ends_at": end.isoformat(),
                "price_fen_per_30min": price,
                "buffer_minutes": buffer,
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def book(
        self, spot_id: str, start: datetime, end: datetime, plate: str = "浙K12345", headers: dict[str, str] | None = None
    ) -> Any:
        return await self.svc.client.post(
            "/bookings",
            headers=headers or self.booker_h,
            json={"spot_id": spot_id, "starts_at": start.isoformat(), "ends_at": end.isoformat(), "plate": plate},
        )

    async def register_gate(self) -> None:
        r = await self.svc.client.post("/gate-devices", json={"id": self.device, "name": "北门"}, headers=self.steward_h)
        assert r.status_code == 201, r.text


@pytest.fixture
def community(stack: TestStack, parking: RunningService) -> Community:
    return Community(
        stack=stack,
        svc=parking,
        id=f"c-{uuid.uuid4().hex[:8]}",
        owner=str(uuid.uuid4()),
        booker=str(uuid.uuid4()),
        steward=str(uuid.uuid4()),
        device=f"gate-{uuid.uuid4().hex[:6]}",
    )
