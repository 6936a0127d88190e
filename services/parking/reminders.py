"""Reminders the `remind-bookings` job publishes: a confirmed booking about to start, and a car still
parked after its booking ended.

Each booking is told once: the job marks it (`start_reminded_at`, `overstay_reminded_at`) in the
statement that picks it, with `SKIP LOCKED`, and publishes in the same transaction. Two replicas
running the job at once take different bookings; a booking marked is never picked again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.parking.domain import BookingStatus
from services.parking.events import BookingOverstayed, BookingStartingSoon, publisher
from services.parking.models import BOOKINGS

START_LEAD = timedelta(minutes=15)


async def remind_starting(session: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """Tell the bookers of confirmed bookings starting within `START_LEAD` (not yet started); returns how many."""
    now = now or datetime.now(UTC)
    due = (
        select(BOOKINGS.c.id)
        .where(
            BOOKINGS.c.status == BookingStatus.confirmed.value,
            BOOKINGS.c.start_reminded_at.is_(None),
            BOOKINGS.c.starts_at > now,
            BOOKINGS.c.starts_at <= now + START_LEAD,
        )
        .order_by(BOOKINGS.c.starts_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with transaction(session):
        rows = (
            await session.execute(
                update(BOOKINGS)
                .where(BOOKINGS.c.id.in_(due.scalar_subquery()))
                .values(start_reminded_at=now)
                .returning(
                    BOOKINGS.c.id,
                    BOOKINGS.c.community,
                    BOOKINGS.c.spot_id,
                    BOOKINGS.c.booker_id,
                    BOOKINGS.c.starts_at,
                    BOOKINGS.c.ends_at,
                )
            )
        ).all()
        events = [
            BookingStartingSoon(
                booking_id=str(r.id),
                community=r.community,
                spot_id=str(r.spot_id),
                booker_id=r.booker_id,
                start=r.starts_at,
                end=r.ends_at,
            ).model_dump(mode="json")
            for r in sorted(rows, key=lambda r: (r.starts_at, r.id))
        ]
        await publisher.publish_many(session, BookingStartingSoon.event_type, events, [e["booking_id"] for e in events])
    return len(events)


async def remind_overstays(session: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> int:
    """Tell the booker (and the spot's owner) of each car still in after its booking ended; returns how many."""
    now = now or datetime.now(UTC)
    due = (
        select(BOOKINGS.c.id)
        .where(
            BOOKINGS.c.status == BookingStatus.active.value,
            BOOKINGS.c.kind == "booking",  # a walk-in has no booked end to overstay
            BOOKINGS.c.overstay_reminded_at.is_(None),
            BOOKINGS.c.ends_at <= now,
        )
        .order_by(BOOKINGS.c.ends_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with transaction(session):
        rows = (
            await session.execute(
                update(BOOKINGS)
                .where(BOOKINGS.c.id.in_(due.scalar_subquery()))
                .values(overstay_reminded_at=now)
                .returning(
                    BOOKINGS.c.id,
                    BOOKINGS.c.community,
                    BOOKINGS.c.spot_id,
                    BOOKINGS.c.owner_id,
                    BOOKINGS.c.booker_id,
                    BOOKINGS.c.ends_at,
                    BOOKINGS.c.price_fen_per_30min,
                )
            )
        ).all()
        events = [
            BookingOverstayed(
                booking_id=str(r.id),
                community=r.community,
                spot_id=str(r.spot_id),
                owner_id=r.owner_id,
                booker_id=r.booker_id,
                end=r.ends_at,
                price_fen_per_30min=r.price_fen_per_30min,
            ).model_dump(mode="json")
            for r in sorted(rows, key=lambda r: (r.ends_at, r.id))
        ]
        await publisher.publish_many(session, BookingOverstayed.event_type, events, [e["booking_id"] for e in events])
    return len(events)
