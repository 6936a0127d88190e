"""One notification per (event, recipient), however often and however concurrently the event arrives."""

from __future__ import annotations

import asyncio

from services.kit.envelope import CloudEvent
from services.notify import notifications
from tests.notify.conftest import Community, now, wait_until


def granted(c: Community, resident: str, grant: str) -> CloudEvent:
    data = {"grant_id": grant, "resident_id": resident, "points": 5, "source": "award", "trigger": "award", "granted_at": now()}
    return c.event("governance.points.granted.v1", grant, **data)


async def test_a_redelivered_event_tells_no_one_twice(community: Community) -> None:
    c = community
    first = granted(c, "res-1", "g1")
    await c.publish(first)
    await c.publish(first)  # the broker delivers it again
    await c.publish(granted(c, "res-1", "g2"))  # a later event: proves the duplicate was read before it
    notes = await c.wait_for_inbox("res-1", 2)
    assert [n["seq"] for n in notes] == [2, 1]


async def test_concurrent_deliveries_of_one_event_create_one_notification_per_recipient(community: Community) -> None:
    c = community
    svc = c.svc
    booking = {"booking_id": "bk-1", "spot_id": "s1", "start": now(), "end": now(), "completed_at": now()}
    event = c.event(
        "parking.booking.completed.v1", "bk-1", owner_id="own-1", booker_id="bkr-1", fee_fen=500, owner_share_fen=300, **booking
    )

    async def deliver() -> int:
        async with svc.state.sessionmaker() as session, session.begin():
            return await notifications.notify_event(session, svc.settings, event)  # type: ignore[arg-type]

    created = await asyncio.gather(*(deliver() for _ in range(20)))
    assert sum(created) == 2  # the booker and the owner, once each
    rows = await c.rows("SELECT recipient_id, seq, kind FROM notifications WHERE community = :community ORDER BY recipient_id")
    assert [(r.recipient_id, r.seq, r.kind) for r in rows] == [("bkr-1", 1, "parking.completed"), ("own-1", 1, "parking.shared")]


async def test_the_kit_inbox_applies_one_event_once_under_concurrent_redelivery(community: Community) -> None:
    c = community
    consumer = c.svc.state.consumers[0]
    event = granted(c, "res-2", "g9")
    applied = await asyncio.gather(*(consumer.apply(event) for _ in range(10)), return_exceptions=True)
    assert sorted(applied) == [False] * 9 + [True]  # type: ignore[type-var]

    async def one() -> bool:
        return len(await c.rows("SELECT id FROM notifications WHERE community = :community AND recipient_id = 'res-2'")) == 1

    await wait_until(one)
    assert len(await c.inbox("res-2")) == 1


async def test_a_recipients_numbers_follow_commit_order_under_concurrent_events(community: Community) -> None:
    c = community
    svc = c.svc

    async def deliver(i: int) -> int:
        async with svc.state.sessionmaker() as session, session.begin():
            return await notifications.notify_event(session, svc.settings, granted(c, "res-3", f"gc{i}"))  # type: ignore[arg-type]

    assert sum(await asyncio.gather(*(deliver(i) for i in range(30)))) == 30
    rows = await c.rows("SELECT seq FROM notifications WHERE community = :community AND recipient_id = 'res-3' ORDER BY id")
    assert [r.seq for r in rows] == list(range(1, 31))
