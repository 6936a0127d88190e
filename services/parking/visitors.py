"""Visitor cars (访客车辆): a resident's visitor pass with a plate, from security's events, lets the car
in through the gate without a booking.

Parking keeps its own projection of those passes (window, entries used, revocation). The gate asks
it by the same matching a booking gets (`gate.may_enter`: the window, with the entry grace), after
bookings and before a walk-in; an entry is counted by a conditional UPDATE, so gates reading the
same plate at once cannot let in more cars than the pass allows.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.parking import domain
from services.parking.events import PassCarAllowed, PassRevoked
from services.parking.models import VISITOR_PLATES

log = logging.getLogger("parking.visitors")


async def allow_car(session: AsyncSession, data: PassCarAllowed) -> None:
    """Record a pass's plate; a redelivered event changes nothing it has counted."""
    try:
        plate = domain.normalize_plate(data.plate)
    except domain.InvalidPlate:
        # Security takes any plate-like text; the gate reads only mainland plates, so this car can't match.
        log.warning("pass %s: its plate is not a mainland plate; the gate will not match it", data.pass_id)
        return
    values = {
        "pass_id": data.pass_id,
        "community": data.community,
        "plate": plate,
        "valid_from": data.valid_from,
        "valid_until": data.valid_until,
        "max_entries": data.max_entries,
    }
    await session.execute(insert(VISITOR_PLATES).values(**values).on_conflict_do_nothing(index_elements=["pass_id"]))


async def revoke(session: AsyncSession, data: PassRevoked, at: datetime) -> None:
    """A revoked pass lets no car in from now (a pass with no plate is not here: nothing happens)."""
    t = VISITOR_PLATES.c
    stmt = update(VISITOR_PLATES).where(t.pass_id == data.pass_id, t.community == data.community, t.revoked_at.is_(None))
    await session.execute(stmt.values(revoked_at=at))


def _has_entries_left() -> ColumnElement[bool]:
    t = VISITOR_PLATES.c
    return or_(t.max_entries.is_(None), t.entries_used < t.max_entries)


async def admit(session: AsyncSession, community: str, plate: str, window: ColumnElement[bool]) -> str | None:
    """Count one entry on a live pass for this plate whose window admits the car now (`window`: the
    gate's `may_enter` over the pass's columns); the pass id, or None when no pass lets it in."""
    t = VISITOR_PLATES.c
    live = select(t.pass_id).where(
        t.community == community, t.plate == plate, t.revoked_at.is_(None), window, _has_entries_left()
    )
    # The pass ending first is spent first; SKIP LOCKED leaves a pass another gate is counting.
    candidate = live.order_by(t.valid_until, t.pass_id).limit(1).with_for_update(skip_locked=True).scalar_subquery()
    stmt = (
        update(VISITOR_PLATES)
        .where(t.pass_id == candidate, _has_entries_left())
        .values(entries_used=t.entries_used + 1)
        .returning(t.pass_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def came_on_a_pass(session: AsyncSession, community: str, plate: str, since: datetime) -> str | None:
    """The pass a car leaving now most likely came in on: one of its plate's passes that was used
    and whose window had not ended by `since` (the exit never traps a car either way)."""
    t = VISITOR_PLATES.c
    query = (
        select(t.pass_id)
        .where(and_(t.community == community, t.plate == plate, t.entries_used > 0, t.valid_until > since))
        .order_by(t.valid_until.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()
