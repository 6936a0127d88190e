"""Races and the weekly-window model, through HTTP against the real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.parking import domain
from services.parking.domain import COMMUNITY_TZ, Interval
from services.parking.models import Booking
from tests.parking.conftest import Community, next_half_hour

H = timedelta(hours=1)


async def test_500_concurrent_bookings_of_one_window_exactly_one_wins(community: Community) -> None:
    c, svc = community, community.svc
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 2 * H)
    bookers = [c.auth(str(uuid.uuid4()), "resident") for _ in range(500)]
    results = await asyncio.gather(*(c.book(spot, start, start + H, headers=h) for h in bookers))
    codes = [r.status_code for r in results]
    assert codes.count(201) == 1, {code: codes.count(code) for code in set(codes)}
    assert codes.count(409) == 499
    assert {r.json()["type"] for r in results if r.status_code == 409} == {"urn:community:problem:parking/booking-conflict"}
    async with svc.state.sessionmaker() as session, session.begin():
        held = (
            await session.execute(select(func.count()).select_from(Booking).where(Booking.spot_id == uuid.UUID(spot)))
        ).scalar_one()
    assert held == 1


async def test_200_concurrent_bookings_of_200_windows_all_succeed(community: Community) -> None:
    c = community
    start = next_half_hour()
    spots = [await c.spot(code=f"S-{i:03d}") for i in range(20)]
    # 20 spots x 10 consecutive one-hour windows: 200 windows, no two of one spot overlapping.
    slots = [(spot, start + k * H) for spot in spots for k in range(10)]
    for spot, s in slots:
        await c.window(spot, s, s + H)
    results = await asyncio.gather(*(c.book(spot, s, s + H, headers=c.auth(str(uuid.uuid4()), "resident")) for spot, s in slots))
    assert [r.status_code for r in results] == [201] * 200, [r.text for r in results if r.status_code != 201][:3]


def _monday_after(day: date) -> date:
    return day + timedelta(days=7 - day.weekday())


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    weekdays=st.frozensets(st.integers(1, 7), min_size=1),
    start_q=st.integers(0, 95),
    length_q=st.integers(4, 96),
    bookings=st.lists(st.tuples(st.integers(0, 13 * 24 * 4), st.integers(2, 24 * 4)), min_size=1, max_size=6),
)
async def test_weekly_bookings_match_brute_force_model(
    community: Community, weekdays: frozenset[int], start_q: int, length_q: int, bookings: list[tuple[int, int]]
) -> None:
    """Random weekly windows (including overnight ones) and bookings: what the API accepts is exactly
    what a brute-force model in local wall time accepts, and accepted bookings never overlap."""
    c = community
    spot = await c.spot()
    local_start = time(start_q // 4, 15 * (start_q % 4))
    end_dt = datetime.combine(date(2000, 1, 1), local_start) + timedelta(minutes=15 * length_q)
    local_end = end_dt.time()
    r = await c.svc.client.post(
        f"/spots/{spot}/windows",
        headers=c.owner_h,
        json={
            "kind": "weekly",
            "weekdays": sorted(weekdays),
            "local_start": local_start.isoformat(),
            "local_end": local_end.isoformat(),
            "price_fen_per_30min": 100,
        },
    )
    if domain.weekly_duration(local_start, local_end) < timedelta(minutes=60):
        assert r.status_code == 422
        return
    assert r.status_code == 201, r.text
    base_day = _monday_after(domain.local_today(datetime.now(COMMUNITY_TZ)))
    base = datetime.combine(base_day, time(0), tzinfo=COMMUNITY_TZ)
    first, last = base_day - timedelta(days=1), base_day + timedelta(days=16)
    occurrences = domain.expand_weekly(weekdays, local_start, local_end, first, last)
    accepted: list[Interval] = []
    for offset_q, len_q in bookings:
        b = Interval(base + timedelta(minutes=15 * offset_q), base + timedelta(minutes=15 * (offset_q + len_q)))
        # The model: inside one occurrence (checked in naive local time) and clear of every accepted booking.
        local_s, local_e = (x.astimezone(COMMUNITY_TZ).replace(tzinfo=None) for x in (b.start, b.end))
        inside = any(
            o.start.astimezone(COMMUNITY_TZ).replace(tzinfo=None) <= local_s
            and local_e <= o.end.astimezone(COMMUNITY_TZ).replace(tzinfo=None)
            for o in occurrences
        )
        clear = not any(a.overlaps(b) for a in accepted)
        r = await c.book(spot, b.start, b.end, plate="浙K12345")
        if inside and clear:
            assert r.status_code == 201, (r.text, b)
            accepted.append(b)
        else:
            assert r.status_code == 409, (r.text, b, inside, clear)
            expected = "booking-conflict" if inside else "outside-window"
            assert r.json()["type"].endswith(expected)
