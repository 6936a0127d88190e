"""Fixtures for the gateway: its database (own migration chain), a real upstream, running gateways."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.app import create_app
from gateway.communities import put_community
from gateway.migrate import upgrade_gateway_database
from gateway.schemas import CommunityPut
from gateway.settings import Settings
from services.kit.db import make_engine, make_sessionmaker
from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from tests.gateway.upstream import UpstreamState, create_upstream, serve
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack, new_namespace

COMMUNITY = "test-community"


@dataclass
class RecordingSender:
    """Stands in for the SMS port: keeps the codes it was asked to send, by phone."""

    sent: dict[str, list[str]] = field(default_factory=dict)

    async def send(self, *, resident_id: str, phone: str, code: str) -> None:
        self.sent.setdefault(phone, []).append(code)


async def serve_community(sessionmaker: async_sessionmaker[AsyncSession], community: str, region_code: str = "331102") -> None:
    """Create a community as a platform administrator's call would (the use case behind the route)."""
    async with sessionmaker() as session:
        await put_community(session, community, CommunityPut(name=f"社区 {community}", region_code=region_code))


@pytest.fixture(scope="session")
async def gateway_template(stack: TestStack) -> str:
    url = await stack.empty_database("gwtmpl")
    await upgrade_gateway_database(url)
    # Every gateway made from the template serves the tests' community, as a platform admin made it.
    engine = make_engine(url, pool_size=1)
    try:
        await serve_community(make_sessionmaker(engine), COMMUNITY)
    finally:
        await engine.dispose()
    return url.rsplit("/", 1)[1]


@dataclass
class Upstream:
    url: str
    app: FastAPI
    state: UpstreamState


@pytest.fixture
async def upstream(stack: TestStack) -> AsyncIterator[Upstream]:
    app, state = create_upstream(stack.jwks_url)
    async with serve(app) as url:
        yield Upstream(url, app, state)


GatewayFactory = Callable[..., Any]


def gateway_settings(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "rate_limit_login": "1000/minute",
        "otp_sends_per_phone": "1000/day",
        "otp_sends_per_ip": "100000/day",
        "openapi_cache_s": 0.5,
        "breaker_open_s": 0.5,
    }
    values.update(overrides)
    return values


@asynccontextmanager
async def running_gateway(
    stack: TestStack, template: str, *, database_url: str | None = None, namespace: str | None = None, **overrides: Any
) -> AsyncIterator[RunningService]:
    url = database_url or await stack.empty_database("gateway", template=template)
    overrides.setdefault("keys_dir", stack.keys_dir)
    try:
        async with run_service(
            stack, "gateway", create_app, Settings, database_url=url, namespace=namespace, **gateway_settings(**overrides)
        ) as svc:
            svc.state.identity.sender = RecordingSender()
            yield svc
    finally:
        if database_url is None:
            await stack.drop_database(url)


@pytest.fixture
async def gateway(stack: TestStack, gateway_template: str, upstream: Upstream) -> AsyncIterator[RunningService]:
    async with running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}) as svc:
        yield svc


def sender(svc: RunningService) -> RecordingSender:
    found: RecordingSender = svc.state.identity.sender
    return found


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 20, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def publish_property_event(svc: RunningService, event_type: str, key: str, data: dict[str, Any]) -> None:
    for consumer in svc.state.consumers:
        await asyncio.wait_for(consumer.ready.wait(), 30)
    event = CloudEvent(type=event_type, source="/services/property", data=data, key=key)
    await publish_raw(svc.settings, svc.settings.kafka_namespace + "property.events", event)


async def register_resident(svc: RunningService, phone: str, roles: list[str] | None = None, community: str = COMMUNITY) -> str:
    """Property registers a resident (by its event); returns the id once the gateway knows them."""
    resident_id = str(uuid.uuid4())
    await publish_property_event(
        svc,
        "property.resident.registered.v1",
        resident_id,
        {
            "resident_id": resident_id,
            "community": community,
            "household_id": str(uuid.uuid4()),
            "building_id": str(uuid.uuid4()),
            "name": "测试居民",
            "phone": phone,
            "roles": roles or ["resident"],
            "some_future_field": {"ignored": True},
        },
    )

    async def known() -> bool:
        from gateway.models import Resident

        async with svc.state.sessionmaker() as session, session.begin():
            return await session.get(Resident, resident_id) is not None

    await wait_until(known)
    return resident_id


async def register_staff(svc: RunningService, username: str, roles: list[str]) -> str:
    staff_id = str(uuid.uuid4())
    await publish_property_event(
        svc,
        "property.staff.registered.v1",
        staff_id,
        {
            "staff_id": staff_id,
            "community": COMMUNITY,
            "name": "测试员工",
            "username": username,
            "roles": roles,
        },
    )

    async def known() -> bool:
        from gateway.models import StaffMember

        async with svc.state.sessionmaker() as session, session.begin():
            return await session.get(StaffMember, staff_id) is not None

    await wait_until(known)
    return staff_id


async def resident_login(svc: RunningService, phone: str) -> dict[str, Any]:
    r = await svc.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
    assert r.status_code == 202, r.text
    code = sender(svc).sent[phone][-1]
    r = await svc.client.post("/auth/token", json={"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def random_phone() -> str:
    return "170" + str(uuid.uuid4().int)[:8]


def client_from(svc: RunningService, ip: str) -> httpx.AsyncClient:
    """A client whose requests come from `ip` (the ASGI scope's client address)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app, client=(ip, 40000)), base_url="http://test")


__all__ = ["COMMUNITY", "new_namespace"]
