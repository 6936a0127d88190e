"""What the orchestrator's probes see: a broker outage degrades a service but keeps it serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.app import create_app as create_gateway
from gateway.migrate import upgrade_gateway_database
from gateway.settings import Settings as GatewaySettings
from services.kit.health import ReadinessCheck, assess
from services.timebank.app import create_app
from services.timebank.settings import Settings
from tests.kit.test_backbone import wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack
from tests.timebank.community import WORKER, Community


def answers(reason: str | None) -> ReadinessCheck:
    async def check() -> str | None:
        return reason

    return check


@pytest.mark.parametrize(
    ("down", "cannot_serve_without", "status"),
    [
        ((), {"database"}, "ready"),
        (("broker",), {"database"}, "degraded"),
        (("redis",), {"database"}, "degraded"),  # a service's Redis is a cache
        (("redis",), {"database", "redis"}, "not ready"),  # the gateway's is not
        (("database",), {"database"}, "not ready"),
        (("database", "broker"), {"database"}, "not ready"),
    ],
)
async def test_only_what_a_replica_cannot_serve_without_makes_it_unready(
    down: tuple[str, ...], cannot_serve_without: set[str], status: str
) -> None:
    checks = {name: answers(f"{name} unreachable" if name in down else None) for name in ("database", "redis", "broker")}
    readiness = await assess(checks, cannot_serve_without)
    assert readiness.status == status
    assert readiness.can_serve == (status != "not ready")
    assert readiness.checks == {name: f"{name} unreachable" if name in down else "ok" for name in checks}


@pytest.fixture
async def timebank(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "timebank", create_app, Settings) as svc:
        yield svc


@pytest.fixture
async def gateway(stack: TestStack, timebank: RunningService) -> AsyncIterator[RunningService]:
    url = await stack.empty_database("gateway")
    await upgrade_gateway_database(url)
    async with run_service(
        stack,
        "gateway",
        create_gateway,
        GatewaySettings,
        database_url=url,
        keys_dir=stack.keys_dir,
        upstreams={"timebank": "http://127.0.0.1:9"},
    ) as svc:
        yield svc
    await stack.drop_database(url)


async def wait_status(svc: RunningService, status: str, timeout: float = 60) -> tuple[int, dict[str, str]]:
    seen: dict[str, object] = {}

    async def reached() -> bool:
        r = await svc.client.get("/readyz")
        seen.update(code=r.status_code, body=r.json())
        return bool(r.json()["status"] == status)

    await wait_until(reached, timeout=timeout, interval=0.3)
    body = seen["body"]
    assert isinstance(body, dict)
    return int(str(seen["code"])), body["checks"]


async def test_a_broker_outage_leaves_the_services_and_the_gateway_ready_and_serving(
    stack: TestStack, timebank: RunningService, gateway: RunningService
) -> None:
    if stack.broker is None:
        pytest.skip("needs the embedded broker, which the test stops and restarts")
    community = Community(stack, timebank)
    code, checks = await wait_status(timebank, "ready")
    assert code == 200 and checks["broker"] == "ok"
    # The gateway is `degraded` throughout: its one upstream here is a closed port.
    code, checks = await wait_status(gateway, "degraded")
    assert code == 200 and set(checks.values()) == {"ok"}
    stack.stop_broker()
    try:
        code, checks = await wait_status(timebank, "degraded")
        assert code == 200, "a degraded replica stays behind the load balancer"
        assert checks["broker"] == "broker unreachable" and checks["database"] == "ok"
        assert (await timebank.client.get("/healthz")).status_code == 200
        enrolled = await community.enrol("res-outage", volunteer=True)
        assert enrolled["is_volunteer"]
        read = await timebank.client.get("/members/res-outage", headers=community.h(WORKER))
        assert read.status_code == 200 and read.json()["is_volunteer"]

        async def gateway_sees_the_outage() -> bool:
            r = await gateway.client.get("/readyz")
            return bool(r.status_code == 200 and r.json()["checks"]["broker"] == "broker unreachable")

        await wait_until(gateway_sees_the_outage, timeout=60, interval=0.3)
        assert (await gateway.client.get("/readyz")).json()["checks"]["redis"] == "ok"
    finally:
        stack.start_broker()
    code, checks = await wait_status(timebank, "ready")
    assert code == 200 and set(checks.values()) == {"ok"}


async def test_without_its_database_a_service_is_not_ready_but_still_alive(stack: TestStack, timebank: RunningService) -> None:
    if stack.pg is None:
        pytest.skip("needs the embedded PostgreSQL, which the test stops and restarts")
    await wait_status(timebank, "ready")
    stack.stop_database()
    try:
        code, checks = await wait_status(timebank, "not ready")
        assert code == 503 and checks["database"].startswith("database unreachable")
        assert (await timebank.client.get("/healthz")).status_code == 200, "liveness asks no other server"
    finally:
        stack.start_database()
    code, _ = await wait_status(timebank, "ready")
    assert code == 200
