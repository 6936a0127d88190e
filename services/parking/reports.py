"""Reports: an owner's earnings by local month, and the community's occupancy for staff."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from sqlalchemy import func, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.parking import domain
from services.parking.domain import OCCUPYING_STATUSES, BookingStatus
from services.parking.models import BOOKINGS, SPOTS, one_of
from services.parking.schemas import Earnings, EarningsMonth, Occupancy, OccupancyHour

# Spots booked in each local hour of a day: a booking takes its spot from the earlier of its start and
# the car's entry to the later of its end and the car's exit.
_HOURS_SQL = f"""
SELECT h.start AS hour_start, count(DISTINCT b.spot_id) AS booked_spots
FROM generate_series(CAST(:first AS timestamptz),
                     CAST(:first AS timestamptz) + interval '23 hours',
                     interval '1 hour') AS h(start)
LEFT JOIN bookings b ON b.community = :community
     AND {one_of("b.status", OCCUPYING_STATUSES)}
     AND tstzrange(least(b.starts_at, coalesce(b.entered_at, b.starts_at)),
                   greatest(b.starts_at, coalesce(b.exited_at, b.ends_at)), '[)')
         && tstzrange(h.start, h.start + interval '1 hour', '[)')
GROUP BY h.start ORDER BY h.start"""


async def earnings(session: AsyncSession, principal: Principal) -> Earnings:
    """The caller's completed bookings as a spot owner, with fees and the owner's share, by local month."""
    month = func.to_char(func.timezone(domain.COMMUNITY_TZ.key, BOOKINGS.c.exited_at), "YYYY-MM")
    query = (
        select(
            month.label("month"),
            func.count().label("bookings"),
            func.sum(BOOKINGS.c.paid_fen - BOOKINGS.c.refunded_fen).label("fee_fen"),
            func.sum(BOOKINGS.c.owner_share_fen).label("owner_share_fen"),
        )
        .where(
            BOOKINGS.c.community == principal.community,
            BOOKINGS.c.owner_id == principal.subject,
            BOOKINGS.c.status == BookingStatus.completed.value,
        )
        .group_by(month)
        .order_by(month.desc())
    )
    async with transaction(session):
        rows = (await session.execute(query)).all()
    months = [
        EarningsMonth(
            month=r.month, bookings=r.bookings, fee_fen=int(r.fee_fen or 0), owner_share_fen=int(r.owner_share_fen or 0)
        )
        for r in rows
    ]
    return Earnings(
        owner_id=principal.subject,
        total_owner_share_fen=sum(m.owner_share_fen for m in months),
        completed_bookings=sum(m.bookings for m in months),
        months=months,
    )


async def occupancy(session: AsyncSession, principal: Principal, day: date | None) -> Occupancy:
    """Verified spots, cars parked now, bookings running now, and spots booked in each hour of `day`."""
    now = datetime.now(UTC)
    day = day or domain.local_today(now)
    first_hour = datetime.combine(day, time(0), tzinfo=domain.COMMUNITY_TZ)
    spots_query = (
        select(func.count()).select_from(SPOTS).where(SPOTS.c.community == principal.community, SPOTS.c.status == "verified")
    )
    occupied_query = (
        select(func.count())
        .select_from(BOOKINGS)
        .where(BOOKINGS.c.community == principal.community, BOOKINGS.c.status == BookingStatus.active.value)
    )
    booked_query = (
        select(func.count())
        .select_from(BOOKINGS)
        .where(
            BOOKINGS.c.community == principal.community,
            BOOKINGS.c.status.in_([BookingStatus.confirmed.value, BookingStatus.active.value]),
            BOOKINGS.c.starts_at <= now,
            BOOKINGS.c.ends_at > now,
        )
    )
    async with transaction(session):
        spots = (await session.execute(spots_query)).scalar_one()
        occupied = (await session.execute(occupied_query)).scalar_one()
        booked = (await session.execute(booked_query)).scalar_one()
        hours = (await session.execute(text(_HOURS_SQL), {"first": first_hour, "community": principal.community})).all()
    return Occupancy(
        at=now,
        spots=spots,
        occupied_now=occupied,
        booked_now=booked,
        hours=[OccupancyHour(**h._mapping) for h in hours],
    )
