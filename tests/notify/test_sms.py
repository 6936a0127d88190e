"""SMS through the real service: sent when urgent, deferred by quiet hours when not, capped per
recipient per hour under concurrency, retried and dead-lettered when the provider fails."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.kit.envelope import CloudEvent
from services.kit.sms import TencentConfig
from services.kit.tencent_sms import TencentSms
from services.notify import deliveries, notifications
from services.notify.app import create_app
from services.notify.settings import Settings
from tests.notify.conftest import Community, now, wait_until
from tests.notify.fake_tencent import SECRET_ID, SECRET_KEY, fake_tencent
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack

CAP = 5


@pytest.fixture(scope="module")
async def notify(stack: TestStack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningService]:
    sms_log = tmp_path_factory.mktemp("sms") / "sms.log"
    overrides: dict[str, Any] = {
        "sms_outbox_path": str(sms_log),
        "deliver_every_s": 0.05,
        "sms_per_recipient_per_hour": CAP,
        "sms_max_attempts": 3,
        "sms_backoff_s": 0.01,
        "sms_backoff_cap_s": 0.05,
    }
    async with run_service(stack, "notify", create_app, Settings, **overrides) as svc:
        yield svc


def cancelled(c: Community, volunteer: str) -> CloudEvent:
    return c.event(
        "timebank.care_request.cancelled.v1",
        "req",
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        elder_id="elder-1",
        volunteer_id=volunteer,
        service_type="companionship",
        starts_at=now(),
        cancelled_by="elder-1",
        cancelled_at=now(),
    )


def expired(c: Community, member: str) -> CloudEvent:
    data = {
        "transfer_id": f"x-{uuid.uuid4().hex[:8]}",
        "member_id": member,
        "minutes": 120,
        "valid_months": 24,
        "expired_at": now(),
    }
    return c.event("timebank.hours.expired.v1", "x", **data)


async def tell(c: Community, event: CloudEvent) -> int:
    async with c.svc.state.sessionmaker() as session, session.begin():
        return await notifications.notify_event(session, c.svc.settings, event)  # type: ignore[arg-type]


async def deliveries_of(c: Community, person: str) -> list[Any]:
    return await c.rows(
        "SELECT d.id, d.status, d.attempts, d.last_error, d.next_attempt_at, n.kind FROM deliveries d "
        "JOIN notifications n ON n.id = d.notification_id "
        "WHERE n.community = :community AND n.recipient_id = :p ORDER BY d.id",
        p=person,
    )


async def settled(c: Community, person: str, count: int) -> list[Any]:
    rows: list[Any] = []

    async def done() -> bool:
        nonlocal rows
        rows = await deliveries_of(c, person)
        return len(rows) == count and all(r.status not in ("pending", "sending") for r in rows)

    await wait_until(done)
    return rows


def sms_lines(c: Community) -> list[dict[str, Any]]:
    path = Path(c.svc.settings.sms_outbox_path)  # type: ignore[attr-defined]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_an_urgent_sms_goes_at_once_with_the_phone_masked_in_the_local_outbox(community: Community) -> None:
    c = community
    await c.register_resident("vol-1", "13812345678")
    assert await tell(c, cancelled(c, "vol-1")) == 1
    [delivery] = await settled(c, "vol-1", 1)
    assert delivery.status == "sent" and delivery.attempts == 1
    [line] = [line for line in sms_lines(c) if line["reference"] == f"delivery-{delivery.id}"]
    assert line["to"] == "138****5678" and "护理预约已取消" in line["text"]
    assert all("13812345678" not in json.dumps(line, ensure_ascii=False) for line in sms_lines(c))


async def test_quiet_hours_defer_a_non_urgent_sms_and_never_an_urgent_one(community: Community) -> None:
    c = community
    await c.register_resident("vol-2", "13900002222")
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (
        (local - timedelta(hours=1)).time().replace(microsecond=0),
        (local + timedelta(hours=1)).time().replace(microsecond=0),
    )
    r = await c.client.patch(
        "/me/settings",
        json={"quiet_start": start.isoformat(), "quiet_end": end.isoformat()},
        headers=c.auth("vol-2", "volunteer"),
    )
    assert r.status_code == 200, r.text
    await tell(c, expired(c, "vol-2"))
    await tell(c, cancelled(c, "vol-2"))

    async def urgent_sent() -> bool:
        return any(r.kind == "care.cancelled" and r.status == "sent" for r in await deliveries_of(c, "vol-2"))

    await wait_until(urgent_sent)
    deferred = next(r for r in await deliveries_of(c, "vol-2") if r.kind == "hours.expired")
    assert deferred.status == "pending" and deferred.attempts == 0
    assert deferred.next_attempt_at > datetime.now(UTC) + timedelta(minutes=50)  # the end of the quiet hours


async def test_the_hourly_cap_holds_under_50_concurrent_urgent_events_for_one_recipient(community: Community) -> None:
    c = community
    await c.register_resident("vol-3", "13700003333")
    created = await asyncio.gather(*(tell(c, cancelled(c, "vol-3")) for _ in range(50)))
    assert sum(created) == 50
    # Extra workers race the service's own job for the same deliveries, as other replicas would.
    await asyncio.gather(*(deliveries.deliver_round(c.svc.state) for _ in range(4)))
    rows = await settled(c, "vol-3", 50)
    statuses = [r.status for r in rows]
    hours = await c.rows("SELECT sent FROM sms_hours WHERE community = :community AND recipient_id = 'vol-3'")
    assert all(h.sent <= CAP for h in hours)  # per clock hour (a run across an hour's end may fill two)
    assert statuses.count("sent") == sum(h.sent for h in hours) >= CAP
    assert statuses.count("sent") + statuses.count("capped") == 50
    sent_ids = {r.id for r in rows if r.status == "sent"}
    lines = [line for line in sms_lines(c) if line["reference"] in {f"delivery-{r.id}" for r in rows}]
    assert sorted(line["reference"] for line in lines) == sorted(f"delivery-{i}" for i in sent_ids)  # each sent exactly once
    assert len(await c.inbox("vol-3")) == 50  # every in-app copy is there


async def test_a_failing_provider_is_retried_then_dead_lettered_with_its_reason_and_the_in_app_copy_stays(
    community: Community,
) -> None:
    c = community
    await c.register_resident("vol-4", "13600004444")
    state = c.svc.state
    local = state.sms_sender
    with fake_tencent("InternalError.BackendTimeout") as fake:
        config = TencentConfig(
            SECRET_ID, SECRET_KEY, "ap-guangzhou", "1400000000", "未来社区", "1", "2", fake.endpoint, "http", 2.0
        )
        state.sms_sender = TencentSms(config)
        try:
            await tell(c, cancelled(c, "vol-4"))
            [delivery] = await settled(c, "vol-4", 1)
        finally:
            state.sms_sender = local
    assert delivery.status == "dead" and delivery.attempts == 3
    assert delivery.last_error.startswith("InternalError.BackendTimeout") and "13600004444" not in delivery.last_error
    assert len(fake.requests) == 3 and all(r["signed"] for r in fake.requests)
    attempts = await c.rows(
        "SELECT attempt, outcome FROM delivery_attempts WHERE delivery_id = :d ORDER BY attempt", d=delivery.id
    )
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    [note] = await c.inbox("vol-4")
    assert note["kind"] == "care.cancelled" and note["read_at"] is None


async def test_a_recipient_without_a_phone_gets_the_in_app_copy_and_no_sms(community: Community) -> None:
    c = community
    await tell(c, cancelled(c, "vol-5"))
    [delivery] = await deliveries_of(c, "vol-5")
    assert delivery.status == "no_address"
    assert len(await c.inbox("vol-5")) == 1
