"""Fixtures for property's tests: a running service on a fresh database and a small registry in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.property.app import create_app
from services.property.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack

COMMUNITY = "test-community"
ALL_WEEK = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]


@pytest.fixture
async def svc(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(
        stack,
        "property",
        create_app,
        Settings,
        sla_check_interval_s=3600,
        db_pool_size=30,
    ) as running:
        yield running


@dataclass
class World:
    """A small registry: two buildings, households, residents and stewards, all through the API."""

    stack: TestStack
    client: httpx.AsyncClient
    admin: str = field(default_factory=lambda: str(uuid.uuid4()))
    buildings: dict[str, str] = field(default_factory=dict)
    households: dict[str, str] = field(default_factory=dict)
    residents: dict[str, str] = field(default_factory=dict)
    stewards: dict[str, str] = field(default_factory=dict)

    def as_admin(self) -> dict[str, str]:
        return self.stack.auth(self.admin, "property_admin", community=COMMUNITY)

    def as_resident(self, name: str) -> dict[str, str]:
        return self.stack.auth(self.residents[name], "resident", community=COMMUNITY)

    def as_steward(self, name: str) -> dict[str, str]:
        return self.stack.auth(self.stewards[name], "steward", community=COMMUNITY)

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str], status: int = 201) -> Any:
        r = await self.client.post(path, json=body, headers=headers)
        assert r.status_code == status, r.text
        return r.json()

    async def building(self, code: str) -> str:
        body = await self.post("/buildings", {"code": code, "name": f"{code}幢"}, self.as_admin())
        self.buildings[code] = body["id"]
        return str(body["id"])

    async def household(self, code: str, unit: str) -> str:
        body = await self.post("/households", {"building_id": self.buildings[code], "unit": unit}, self.as_admin())
        self.households[unit] = body["id"]
        return str(body["id"])

    async def resident(self, name: str, unit: str, phone: str) -> str:
        body = await self.post(
            "/residents", {"household_id": self.households[unit], "name": name, "phone": phone}, self.as_admin()
        )
        self.residents[name] = body["id"]
        return str(body["id"])

    async def steward(self, name: str, buildings: list[str], backup_for: list[str], on_duty: bool = True) -> str:
        body = await self.post(
            "/staff",
            {
                "name": name,
                "username": f"steward.{name}",
                "roles": ["steward"],
                "buildings": [self.buildings[b] for b in buildings],
                "backup_for": [self.buildings[b] for b in backup_for],
            },
            self.as_admin(),
        )
        self.stewards[name] = body["id"]
        r = await self.client.put(
            f"/staff/{body['id']}/roster", json={"shifts": ALL_WEEK if on_duty else []}, headers=self.as_admin()
        )
        assert r.status_code == 200, r.text
        return str(body["id"])

    async def submit(self, resident: str, category: str = "repair", status: int = 201, **extra: Any) -> Any:
        return await self.post(
            "/tickets", {"category": category, "description": "水管漏水", **extra}, self.as_resident(resident), status
        )

    async def act(
        self, ticket_id: str, action: str, headers: dict[str, str], body: dict[str, Any] | None = None, status: int = 200
    ) -> Any:
        r = await self.client.post(f"/tickets/{ticket_id}/{action}", json=body, headers=headers)
        assert r.status_code == status, r.text
        return r.json()


@pytest.fixture
async def world(stack: TestStack, svc: RunningService) -> World:
    """B1 (steward wu on duty, backup zheng), B2 (steward zheng), households 101 (B1) and 201 (B2)."""
    w = World(stack=stack, client=svc.client)
    await w.building("B1")
    await w.building("B2")
    await w.household("B1", "101")
    await w.household("B2", "201")
    await w.resident("wang", "101", "17000000001")
    await w.resident("wang-son", "101", "17000000002")
    await w.resident("li", "201", "17000000003")
    await w.steward("wu", ["B1"], ["B2"])
    await w.steward("zheng", ["B2"], ["B1"])
    return w
