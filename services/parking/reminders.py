"""Reminders the `remind-bookings` job publishes: a confirmed booking about to start, and a car still
parked after its booking ended.

Each booking is told once: the job marks it (`start_reminded_at`, `overstay_reminded_at`) in the
statement that picks it, with `SKIP LOCKED`, and publishes in the same transaction. Two replicas
running the job at once take different bookings; a booking marked is never picked again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.kit.envelope import EventData
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
    return await _mark_and_publish(session, due, {"start_reminded_at": now}, _starting_soon, order_by="starts_at")


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
    return await _mark_and_publish(session, due, {"overstay_reminded_at": now}, _overstayed, order_by="ends_at")


def _starting_soon(row: Row[Any]) -> EventData:
    return BookingStartingSoon(
        booking_id=str(row.id),
        community=row.community,
        spot_id=str(row.spot_id),
        booker_id=row.booker_id,
        start=row.starts_at,
        end=row.ends_at,
    )


def _overstayed(row: Row[Any]) -> EventData:
    return BookingOverstayed(
        booking_id=str(row.id),
        community=row.community,
        spot_id=str(row.spot_id),
        owner_id=row.owner_id,
        booker_id=row.booker_id,
        end=row.ends_at,
        price_fen_per_30min=row.price_fen_per_30min,
    )


async def _mark_and_publish(
    session: AsyncSession,
    due: Select[Any],
    mark: dict[str, datetime],
    event_of: Callable[[Row[Any]], EventData],
    *,
    order_by: str,
) -> int:
    """Marks the bookings `due` picks and publishes one event each, in one transaction, in order."""
    async with transaction(session):
        rows = (
            await session.execute(
                update(BOOKINGS).where(BOOKINGS.c.id.in_(due.scalar_subquery())).values(mark).returning(*BOOKINGS.c)
            )
        ).all()
        ordered = sorted(rows, key=lambda r: (getattr(r, order_by), r.id))
        events = [event_of(r) for r in ordered]
        if events:
            await publisher.publish_many(
                session, events[0].event_type, [e.model_dump(mode="json") for e in events], [str(r.id) for r in ordered]
            )
    return len(events)
