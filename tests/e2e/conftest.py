"""The whole platform for end-to-end tests: the services and the gateway, real servers, one namespace.

Each service runs its real app (lifespan: outbox relay, consumers, jobs) on its own fresh database
and listens on a loopback port with uvicorn; the gateway proxies to those ports exactly as in
`make run`. All of them share ONE Kafka namespace, so their events reach each other.

The platform is started once per test module (starting six apps costs seconds); each test gets
its own community (`Community`), so tests never see each other's people, rules, budgets or feeds.
Only the bootstrap property_admin token is minted by the test (the way `make run` seeds the first
administrator); everyone else logs in through the gateway: residents by phone + one-time code,
staff by password, machines by client credentials.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.citysync.app import create_app as create_citysync
from services.citysync.settings import Settings as CitysyncSettings
from services.governance.app import create_app as create_governance
from services.governance.settings import Settings as GovernanceSettings
from services.kit.auth import PLATFORM_COMMUNITY
from services.notify.app import create_app as create_notify
from services.notify.settings import Settings as NotifySettings
from services.parking.app import create_app as create_parking
from services.parking.settings import Settings as ParkingSettings
from services.property.app import create_app as create_property
from services.property.settings import Settings as PropertySettings
from services.security.app import create_app as create_security
from services.security.settings import Settings as SecuritySettings
from services.timebank.app import create_app as create_timebank
from services.timebank.settings import Settings as TimebankSettings
from tests.gateway.conftest import RecordingSender, gateway_template, running_gateway  # noqa: F401 (fixture)
from tests.gateway.upstream import serve
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack, new_namespace

SERVICES = ("timebank", "parking", "property", "governance", "citysync", "notify")


@dataclass
class Platform:
    stack: TestStack
    services: dict[str, RunningService]
    gateway: RunningService
    namespace: str
    client: httpx.AsyncClient  # of the gateway, over a real socket: the only door the users knock on

    @property
    def sender(self) -> RecordingSender:
        found: RecordingSender = self.gateway.state.identity.sender
        return found


def service_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Callable[[Any], Any], type[Any], dict[str, Any]]]:
    """Every service an e2e platform may run: its app factory, settings and the tests' overrides."""
    sms_log = str(tmp_path_factory.mktemp("notify") / "sms.log")
    return {
        "timebank": (create_timebank, TimebankSettings, {}),
        "parking": (create_parking, ParkingSettings, {"expire_holds_every_s": 3600.0}),
        "property": (create_property, PropertySettings, {"sla_check_interval_s": 3600}),
        "governance": (create_governance, GovernanceSettings, {}),
        "citysync": (create_citysync, CitysyncSettings, {"stats_every_s": 3600.0}),
        "notify": (create_notify, NotifySettings, {"sms_outbox_path": sms_log}),
        # The sweeps and the purge are not what these tests are about: they stay out of the way.
        "security": (create_security, SecuritySettings, {"sweep_every_s": 3600.0, "purge_every_s": 3600.0}),
    }


@asynccontextmanager
async def start_platform(
    stack: TestStack, template: str, tmp_path_factory: pytest.TempPathFactory, names: tuple[str, ...] = SERVICES
) -> AsyncIterator[Platform]:
    """The named services (in order) and the gateway in front of them, on one Kafka namespace."""
    namespace = new_namespace()
    specs = service_specs(tmp_path_factory)
    async with AsyncExitStack() as exits:
        running: dict[str, RunningService] = {}
        urls: dict[str, str] = {}
        for name in names:
            factory, settings_cls, overrides = specs[name]
            svc = await exits.enter_async_context(
                run_service(stack, name, factory, settings_cls, namespace=namespace, **overrides)
            )
            running[name] = svc
            # The app's lifespan already runs under run_service: uvicorn only serves it.
            urls[name] = await exits.enter_async_context(serve(svc.app, lifespan=False))
        gateway = await exits.enter_async_context(
            running_gateway(
                stack,
                template,
                namespace=namespace,
                upstreams=urls,
                rate_limit_user="100000/minute",
                rate_limit_ip="100000/minute",
                rate_limit_login="100000/minute",
                otp_sends_per_ip="100000/day",
            )
        )
        # Served by uvicorn like the services (uvicorn gives each request its own scope state; the
        # in-process test transport shares one dict between requests).
        gateway_url = await exits.enter_async_context(serve(gateway.app, lifespan=False))
        client = await exits.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=30))
        everyone = [*running.values(), gateway]
        await asyncio.gather(*(asyncio.wait_for(c.ready.wait(), 60) for s in everyone for c in s.state.consumers))
        yield Platform(stack=stack, services=running, gateway=gateway, namespace=namespace, client=client)


@pytest.fixture(scope="module")
async def platform(
    stack: TestStack,
    gateway_template: str,  # noqa: F811 (the imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    async with start_platform(stack, gateway_template, tmp_path_factory) as started:
        yield started


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 45, interval: float = 0.1, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(r: httpx.Response, *statuses: int) -> Any:
    assert r.status_code in statuses, f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:600]}"
    return r.json() if r.content else None


@dataclass
class Person:
    id: str
    name: str
    phone: str
    household_id: str
    roles: list[str]
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        assert self.token, f"{self.name} has not logged in"
        return bearer(self.token)


@dataclass
class StaffMember:
    id: str
    username: str
    password: str
    roles: list[str]
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        assert self.token, f"{self.username} has not logged in"
        return bearer(self.token)


@dataclass
class Community:
    """One test's community, set up through the gateway as its property admin would."""

    platform: Platform
    id: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:10]}")
    admin_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    building_id: str = ""

    @property
    def client(self) -> httpx.AsyncClient:
        return self.platform.client

    @property
    def admin(self) -> dict[str, str]:
        # The one token not issued by a login: the first administrator is seeded, as in `make run`.
        return self.platform.stack.auth(self.admin_id, "property_admin", community=self.id)

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
        expected: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> Any:
        r = await self.client.request(method, path, json=body, headers=headers, **kwargs)
        return expect(r, *expected)

    async def building(self, code: str = "B1") -> str:
        body = await self.call("POST", "/api/property/buildings", self.admin, {"code": code, "name": f"{code}幢"})
        self.building_id = str(body["id"])
        return self.building_id

    async def register_resident(self, name: str, *roles: str, unit: str | None = None) -> Person:
        """property_admin registers a household and a resident in property (through the gateway)."""
        if not self.building_id:
            await self.building()
        household = await self.call(
            "POST",
            "/api/property/households",
            self.admin,
            {"building_id": self.building_id, "unit": unit or uuid.uuid4().hex[:6]},
        )
        phone = "170" + str(uuid.uuid4().int)[:8]
        body = await self.call(
            "POST",
            "/api/property/residents",
            self.admin,
            {"household_id": household["id"], "name": name, "phone": phone, "roles": ["resident", *roles]},
        )
        return Person(id=str(body["id"]), name=name, phone=phone, household_id=str(household["id"]), roles=list(body["roles"]))

    async def login(self, person: Person) -> Person:
        """Phone + one-time code at the gateway; waits until the gateway learnt the resident from property."""
        sender = self.platform.sender

        async def code_sent() -> bool:
            expect(await self.client.post("/auth/otp", json={"community": self.id, "phone": person.phone}), 202)
            return bool(sender.sent.get(person.phone))

        await wait_until(code_sent, interval=0.2, what=f"a code for {person.name}")
        token = expect(
            await self.client.post(
                "/auth/token",
                json={"grant_type": "otp", "community": self.id, "phone": person.phone, "code": sender.sent[person.phone][-1]},
            ),
            200,
        )
        assert token["subject"] == person.id and token["community"] == self.id
        person.token = str(token["access_token"])
        return person

    async def resident(self, name: str, *roles: str) -> Person:
        return await self.login(await self.register_resident(name, *roles))

    async def staff(self, role: str, buildings: list[str] | None = None) -> StaffMember:
        """Registers staff in property, sets a password at the gateway, logs in with it."""
        username = f"{role.replace('_', '.')}.{uuid.uuid4().hex[:6]}"
        body = await self.call(
            "POST",
            "/api/property/staff",
            self.admin,
            {"name": "测试员工", "username": username, "roles": [role], "buildings": buildings or []},
        )
        member = StaffMember(id=str(body["id"]), username=username, password=f"pw-{uuid.uuid4().hex}", roles=[role])

        async def password_set() -> bool:
            r = await self.client.put(f"/auth/staff/{member.id}/password", json={"password": member.password}, headers=self.admin)
            assert r.status_code in (204, 404), r.text
            return r.status_code == 204

        await wait_until(password_set, interval=0.2, what=f"the gateway knowing {username}")
        token = expect(
            await self.client.post(
                "/auth/token",
                json={"grant_type": "password", "community": self.id, "username": username, "password": member.password},
            ),
            200,
        )
        assert token["roles"] == [role]
        member.token = str(token["access_token"])
        return member

    async def machine(self, client_id: str, role: str) -> tuple[str, dict[str, str]]:
        """A machine client's credentials at the gateway and its token; returns (subject, headers)."""
        secret = f"secret-{uuid.uuid4().hex}"
        created = await self.call(
            "PUT", f"/auth/clients/{client_id}", self.admin, {"roles": [role], "secret": secret}, expected=(200, 201)
        )
        token = expect(
            await self.client.post(
                "/auth/token",
                json={"grant_type": "client_credentials", "community": self.id, "client_id": client_id, "client_secret": secret},
            ),
            200,
        )
        assert token["subject"] == created["subject"] and "refresh_token" not in {k for k, v in token.items() if v is not None}
        return str(created["subject"]), bearer(str(token["access_token"]))


async def served_community(platform: Platform) -> Community:
    """A new community, created through the gateway by a platform administrator, as an operator onboards one."""
    made = Community(platform)
    admin = platform.stack.auth("e2e-platform-admin", "platform_admin", community=PLATFORM_COMMUNITY)
    await made.call("PUT", f"/platform/communities/{made.id}", admin, {"name": made.id, "region_code": "331102"}, (201,))
    return made


@pytest.fixture
async def community(platform: Platform) -> Community:
    return await served_community(platform)
