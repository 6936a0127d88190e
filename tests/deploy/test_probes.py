"""What the orchestrator's probes see: a broker outage degrades a service but keeps it serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.timebank.app import create_app
from services.timebank.settings import Settings
from tests.kit.test_backbone import wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack
from tests.timebank.community import WORKER, Community


@pytest.fixture
async def timebank(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "timebank", create_app, Settings) as svc:
        yield svc


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


async def test_a_broker_outage_leaves_the_service_ready_and_serving(stack: TestStack, timebank: RunningService) -> None:
    if stack.broker is None:
        pytest.skip("needs the embedded broker, which the test stops and restarts")
    community = Community(stack, timebank)
    code, checks = await wait_status(timebank, "ready")
    assert code == 200 and checks["broker"] == "ok"
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
