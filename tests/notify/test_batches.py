"""A fetched batch is told set-based (the kit's batch inbox, one insert for all) with the rules of one at a time:
each (event, recipient) once under redelivery and replay, a recipient's numbers in event order, a directory
fact applied before the events after it, SMS switches, phones and quiet hours per recipient."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.kit.envelope import CloudEvent
from services.kit.inbox import EventConsumer
from services.notify.notifications import FRAMES_UP_TO
from tests.notify.conftest import Community, now


def consumer(c: Community) -> EventConsumer:
    found: EventConsumer = c.svc.state.consumers[0]
    assert found.spec.batch_handler is not None  # the set-based path, not a handler per event
    return found


def granted(c: Community, resident: str, points: int) -> CloudEvent:
    grant = f"g-{uuid.uuid4().hex[:8]}"
    data = {"grant_id": grant, "resident_id": resident, "points": points, "source": "award", "trigger": "award"}
    return c.event("governance.points.granted.v1", grant, **data, granted_at=now())


def cancelled(c: Community, volunteer: str, by: str = "elder-1") -> CloudEvent:
    request = f"req-{uuid.uuid4().hex[:8]}"
    return c.event(
        "timebank.care_request.cancelled.v1",
        request,
        request_id=request,
        elder_id="elder-1",
        volunteer_id=volunteer,
        service_type="companionship",
        starts_at=now(),
        cancelled_by=by,
        cancelled_at=now(),
    )


def expired(c: Community, member: str) -> CloudEvent:
    transfer = f"x-{uuid.uuid4().hex[:8]}"
    data = {"transfer_id": transfer, "member_id": member, "minutes": 120, "valid_months": 24}
    return c.event("timebank.hours.expired.v1", transfer, **data, expired_at=now())


async def notes(c: Community) -> list[Any]:
    return await c.rows(
        "SELECT recipient_id, seq, event_id, kind, body FROM notifications WHERE community = :community "
        "ORDER BY recipient_id, seq"
    )


async def test_a_batch_tells_each_recipient_once_numbered_in_event_order_and_a_replay_tells_no_one(
    community: Community,
) -> None:
    c = community
    events = [granted(c, f"res-{i % 3}", i + 1) for i in range(30)]
    # The same event twice in one batch (a redelivery within a fetch) is applied once.
    assert await consumer(c).apply_batch([*events[:20], events[5], *events[20:]]) == 30
    rows = await notes(c)
    for i in range(3):
        mine = [r for r in rows if r.recipient_id == f"res-{i}"]
        assert [r.seq for r in mine] == list(range(1, 11))
        assert [r.body for r in mine] == [f"您获得 {n + 1} 积分。" for n in range(i, 30, 3)]  # in event order
    # Replayed as a batch (the kit's inbox) and again past the inbox (a replay from another group or
    # a restored inbox): the (event, recipient) key still tells no one twice.
    assert await consumer(c).apply_batch(events) == 0
    forgotten = await c.rows(
        "DELETE FROM kit_inbox WHERE consumer_group = 'notify' AND event_id = ANY(:ids) RETURNING event_id",
        ids=[e.id for e in events],
    )
    assert len(forgotten) == 30
    assert await consumer(c).apply_batch(events) == 30
    assert await notes(c) == rows
    later = granted(c, "res-0", 99)
    assert await consumer(c).apply_batch([later, granted(c, "res-1", 98)]) == 2
    [last] = [r for r in await notes(c) if r.event_id == later.id]
    assert last.seq > 10  # after the numbers a replay left unused: streams skip the gap


async def test_concurrent_batches_for_the_same_recipients_keep_each_ones_numbers_in_commit_order(
    community: Community,
) -> None:
    c = community
    batches = [[granted(c, f"res-{(b + i) % 4}", i + 1) for i in range(25)] for b in range(8)]
    assert sum(await asyncio.gather(*(consumer(c).apply_batch(batch) for batch in batches))) == 200
    rows = await c.rows(
        "SELECT recipient_id, seq, event_id FROM notifications WHERE community = :community ORDER BY recipient_id, id"
    )
    order = {e.id: (b, i) for b, batch in enumerate(batches) for i, e in enumerate(batch)}
    for person in ("res-0", "res-1", "res-2", "res-3"):
        mine = [r for r in rows if r.recipient_id == person]
        assert [r.seq for r in mine] == list(range(1, 51))  # numbered in commit order, no gaps, no repeats
        by_batch: dict[int, list[int]] = {}
        for r in mine:
            b, i = order[r.event_id]
            by_batch.setdefault(b, []).append(i)
        assert all(positions == sorted(positions) for positions in by_batch.values())  # a batch's own order kept


async def test_a_directory_fact_in_a_batch_is_known_to_the_events_after_it(community: Community) -> None:
    c = community
    ticket = f"tk-{uuid.uuid4().hex}"
    common = {"ticket_id": ticket, "category": "repair"}
    building = {"building_id": "b1", "code": "1", "name": "1幢", "steward_id": "st-1", "backup_steward_id": "st-2"}
    admin = {"staff_id": "adm", "name": "钱经理", "username": "admin.qian", "roles": ["property_admin"]}
    filed = {"status": "assigned", "service_code": None, "priority": "urgent", "building_id": "b1", "household_id": "h1"}
    due = {"response_due_at": now(), "resolution_due_at": now(), "submitted_at": now()}
    status = {"status": "accepted", "from_status": "assigned", "action": "accept", "role": "steward", "at": now()}
    breach = {"status": "accepted", "priority": "urgent", "kind": "resolution", "due_at": now(), "escalated_to": "property_admin"}
    batch = [
        c.event("property.building.registered.v1", "b1", **building),
        c.event("property.staff.registered.v1", "adm", **admin),
        c.event("property.ticket.submitted.v1", ticket, **common, **filed, **due, resident_id="res-1", assignee_id="st-1"),
        c.event("property.ticket.status_changed.v1", ticket, **common, **status, actor_id="st-1", assignee_id="st-1"),
        c.event("property.ticket.sla_breached.v1", ticket, **common, **breach, assignee_id="st-1"),
    ]
    assert await consumer(c).apply_batch(batch) == 5
    told = {(r.recipient_id, r.kind) for r in await notes(c)}
    assert told == {
        ("st-1", "ticket.filed"),
        ("res-1", "ticket.status_changed"),  # the ticket's resident, recorded earlier in the same batch
        ("st-1", "ticket.sla_breached"),
        ("st-2", "ticket.sla_breached"),  # the building's backup, likewise
        ("adm", "ticket.sla_breached"),  # the role's holder, likewise
    }


async def test_sms_in_a_batch_follows_each_recipients_phone_switch_and_quiet_hours(community: Community) -> None:
    c = community
    await c.register_resident("vol-1", "13812345678")
    await c.register_resident("vol-2", "13900002222")
    await c.register_resident("vol-3", "13700003333")
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    quiet = {
        "quiet_start": (local - timedelta(hours=1)).time().replace(microsecond=0).isoformat(),
        "quiet_end": (local + timedelta(hours=1)).time().replace(microsecond=0).isoformat(),
    }
    r = await c.client.patch("/me/settings", json=quiet, headers=c.auth("vol-2", "volunteer"))
    assert r.status_code == 200, r.text
    off = {"category": "timebank", "channel": "sms", "enabled": False}
    r = await c.client.put("/me/preferences", json=off, headers=c.auth("vol-3", "volunteer"))
    assert r.status_code == 200, r.text
    # The worker must not send meanwhile: what the batch wrote is read as written.
    c.svc.state.sms_sender, sender = None, c.svc.state.sms_sender
    batch = [
        cancelled(c, "vol-1"),  # urgent, phone: due now
        cancelled(c, "vol-2"),  # urgent: quiet hours do not hold it
        expired(c, "vol-2"),  # not urgent: deferred to the end of the quiet hours
        cancelled(c, "vol-3"),  # SMS switched off for time-bank messages: in-app only
        cancelled(c, "vol-4"),  # no phone known
        cancelled(c, "vol-5", by="vol-5"),  # their own act: no one told
    ]
    started = datetime.now(UTC)
    try:
        assert await consumer(c).apply_batch(batch) == 6
        rows = await c.rows(
            "SELECT n.recipient_id, n.kind, d.status, d.next_attempt_at FROM notifications n "
            "LEFT JOIN deliveries d ON d.notification_id = n.id WHERE n.community = :community ORDER BY n.recipient_id, n.seq"
        )
    finally:
        c.svc.state.sms_sender = sender
    got = {(r.recipient_id, r.kind): r for r in rows}
    assert set(got) == {
        ("vol-1", "care.cancelled"),
        ("vol-2", "care.cancelled"),
        ("vol-2", "hours.expired"),
        ("vol-3", "care.cancelled"),
        ("vol-4", "care.cancelled"),
    }
    for person in ("vol-1", "vol-2"):
        urgent = got[(person, "care.cancelled")]
        assert urgent.status in ("pending", "sending", "sent") and urgent.next_attempt_at < started + timedelta(minutes=5)
    deferred = got[("vol-2", "hours.expired")]
    assert deferred.status == "pending" and deferred.next_attempt_at > started + timedelta(minutes=50)
    assert got[("vol-3", "care.cancelled")].status is None
    assert got[("vol-4", "care.cancelled")].status == "no_address"


async def test_a_batch_mixing_replayed_and_new_events_gives_each_new_one_its_number_and_its_own_sms(
    community: Community,
) -> None:
    c = community
    first, second = cancelled(c, "vol-6"), cancelled(c, "vol-6")
    assert await consumer(c).apply_batch([first, second]) == 2
    await c.rows(
        "DELETE FROM kit_inbox WHERE consumer_group = 'notify' AND event_id = ANY(:ids) RETURNING event_id",
        ids=[first.id, second.id],
    )
    points, third = granted(c, "vol-6", 7), cancelled(c, "vol-6")  # in-app only, then one that texts
    assert await consumer(c).apply_batch([first, points, second, third]) == 4
    rows = await c.rows(
        "SELECT n.event_id, n.seq, d.status FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id "
        "WHERE n.community = :community AND n.recipient_id = 'vol-6' ORDER BY n.seq"
    )
    # The batch took numbers 3 to 6 in its order; the two told before left 3 and 5 unused.
    assert [(r.event_id, r.seq, r.status) for r in rows] == [
        (first.id, 1, "no_address"),
        (second.id, 2, "no_address"),
        (points.id, 4, None),
        (third.id, 6, "no_address"),
    ]


async def test_a_backlogs_batch_mixing_replayed_and_new_events_numbers_each_new_one_and_texts_it(
    community: Community,
) -> None:
    """Past `FRAMES_UP_TO` a batch wakes streams with numbers only; its SMS still find their rows."""
    c = community
    told = [cancelled(c, "vol-7") for _ in range(3)]
    assert await consumer(c).apply_batch(told) == 3
    await c.rows(
        "DELETE FROM kit_inbox WHERE consumer_group = 'notify' AND event_id = ANY(:ids) RETURNING event_id",
        ids=[e.id for e in told],
    )
    points = [granted(c, "vol-7", i + 1) for i in range(FRAMES_UP_TO)]
    texts = cancelled(c, "vol-7")
    assert await consumer(c).apply_batch([told[0], *points, told[1], texts, told[2]]) == FRAMES_UP_TO + 4
    rows = await c.rows(
        "SELECT n.event_id, n.seq, d.status FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id "
        "WHERE n.community = :community AND n.recipient_id = 'vol-7' ORDER BY n.seq"
    )
    # The batch took numbers 4 to 71 in its order; the three told before left 4, 69 and 71 unused.
    assert [(r.event_id, r.seq, r.status) for r in rows] == [
        *((e.id, seq, "no_address") for seq, e in enumerate(told, start=1)),
        *((e.id, seq, None) for seq, e in enumerate(points, start=5)),
        (texts.id, 70, "no_address"),
    ]
