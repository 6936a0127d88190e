"""A steward's monthly figures (管家); the queue is in `listing`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.property import domain
from services.property.models import TICKETS
from services.property.registry import steward_in
from services.property.schemas import StewardFigures


async def steward_figures(session: AsyncSession, who: Principal, steward_id: str, month: str) -> StewardFigures:
    """A steward's tickets created in a local month: how many, completed, on time, and their ratings."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=domain.LOCAL_TZ)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=domain.LOCAL_TZ)
    t = TICKETS.c
    async with transaction(session):
        await steward_in(session, who.community, steward_id)
        done = t.completed_at.is_not(None)
        on_time = and_(done, t.completed_at <= t.resolution_due_at)
        query = select(
            func.count(),
            func.count().filter(done),
            func.count().filter(on_time),
            func.count(t.rating_overall),
            func.avg(t.rating_overall),
        ).where(
            t.community == who.community,
            t.assignee_id == steward_id,
            t.created_at >= start,
            t.created_at < end,
        )
        tickets, completed, timely, rated, avg = (await session.execute(query)).one()
    return StewardFigures(
        steward_id=steward_id,
        month=month,
        tickets=tickets,
        completed=completed,
        on_time=timely,
        on_time_rate=round(timely / completed, 3) if completed else None,
        rated=rated,
        average_rating=round(float(avg), 2) if avg is not None else None,
    )
