"""Parking tells bookers what they need to know: the booking confirmed (with the payment), about to
start, and a car still parked after its end; each once per booking, however many replicas run the job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from services.kit.tables import outbox
from services.parking import reminders
from services.parking.events import BookingConfirmed, BookingOverstayed, BookingStartingSoon
from tests.parking.conftest import Community, next_half_hour
from tests.support.harness import RunningService

H = timedelta(hours=1)


async def events_of(svc: RunningService, booking_id: str) -> list[Any]:
    async with svc.state.sessionmaker() as session, session.begin():
        return list(
            (
                await session.execute(
                    select(outbox.c.type, outbox.c.data).where(outbox.c.key == booking_id).order_by(outbox.c.id)
                )
            ).all()
        )


async def confirmed_booking(c: Community) -> dict[str, Any]:
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 3 * H, price=500)
    r = await c.book(spot, start, start + H, plate="浙KD12345")
    assert r.status_code == 201, r.text
    booking = dict(r.json())
    r = await c.svc.client.post(f"/bookings/{booking['id']}/payment", json={}, headers=c.booker_h)
    assert r.status_code == 200, r.text
    return booking


async def in_parallel(svc: RunningService, work: Any, now: datetime, n: int = 4) -> None:
    """The job as `n` replicas would run it at the same moment, each with its own session."""

    async def one() -> int:
        async with svc.state.sessionmaker() as session:
            return int(await work(session, now=now))

    await asyncio.gather(*(one() for _ in range(n)))


async def test_paying_confirms_once_and_the_event_names_no_plate(community: Community) -> None:
    c = community
    booking = await confirmed_booking(c)
    r = await c.svc.client.post(f"/bookings/{booking['id']}/payment", json={}, headers=c.booker_h)
    assert r.status_code == 409  # paid already: no second confirmation
    [(etype, data)] = await events_of(c.svc, booking["id"])
    event = BookingConfirmed.model_validate(data)
    assert etype == event.event_type and event.booking_id == booking["id"]
    assert (event.booker_id, event.owner_id, event.fee_fen, event.community) == (c.booker, c.owner, 1000, c.id)
    assert "KD12345" not in str(data)


async def test_a_booking_is_reminded_of_its_start_once_within_15_minutes_of_it(community: Community) -> None:
    c = community
    booking = await confirmed_booking(c)
    start = datetime.fromisoformat(booking["starts_at"])
    await in_parallel(c.svc, reminders.remind_starting, start - 20 * timedelta(minutes=1))  # too early
    assert [t for t, _ in await events_of(c.svc, booking["id"])] == [BookingConfirmed.event_type]
    await in_parallel(c.svc, reminders.remind_starting, start - 10 * timedelta(minutes=1))
    await in_parallel(c.svc, reminders.remind_starting, start - 5 * timedelta(minutes=1))  # told already
    [_, (etype, data)] = await events_of(c.svc, booking["id"])
    event = BookingStartingSoon.model_validate(data)
    assert etype == event.event_type and (event.booking_id, event.booker_id) == (booking["id"], c.booker)
    assert event.start == start


async def test_a_car_still_in_after_its_booking_ended_is_told_once(community: Community) -> None:
    c = community
    booking = await confirmed_booking(c)
    start, end = datetime.fromisoformat(booking["starts_at"]), datetime.fromisoformat(booking["ends_at"])
    async with c.svc.state.sessionmaker() as session, session.begin():
        # The car entered at the start (the gate's own path is tested elsewhere).
        await session.execute(
            text("UPDATE bookings SET status = 'active', entered_at = :at WHERE id = :id"),
            {"at": start, "id": uuid.UUID(booking["id"])},
        )
    await in_parallel(c.svc, reminders.remind_overstays, end - timedelta(minutes=1))  # not over yet
    assert len(await events_of(c.svc, booking["id"])) == 1
    await in_parallel(c.svc, reminders.remind_overstays, end + timedelta(minutes=1))
    await in_parallel(c.svc, reminders.remind_overstays, end + timedelta(minutes=40))
    [_, (etype, data)] = await events_of(c.svc, booking["id"])
    event = BookingOverstayed.model_validate(data)
    assert etype == event.event_type and (event.booker_id, event.owner_id, event.end) == (c.booker, c.owner, end)
    assert event.price_fen_per_30min == 500
