"""A steward's view (管家): the open tickets sorted by the deadline each races, and monthly figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, literal, select, text, tuple_
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.property import domain
from services.property.domain import Status
from services.property.models import OPEN_SQL, TICKETS
from services.property.registry import steward_in
from services.property.schemas import StewardFigures, TicketPublic
from services.property.tickets import public


async def steward_queue(
    session: AsyncSession, who: Principal, page: PageParams, scope: str
) -> tuple[list[TicketPublic], str | None]:
    """Open tickets sorted by the deadline they race: mine, the community queue, or (admins) all."""
    t = TICKETS.c
    async with transaction(session):
        query = select(TICKETS).where(t.community == who.community)  # Core rows: read and shaped only
        # Each scope's condition is a partial index's own predicate, so the planner may use that index.
        if scope == "mine":
            query = query.where(t.assignee_id == who.subject, text(OPEN_SQL))
        elif scope == "community":
            query = query.where(t.status == Status.queued.value)
        else:
            query = query.where(text(OPEN_SQL))
        after = page.after()
        if after:
            query = query.where(tuple_(t.due_at, t.id) > tuple_(literal(datetime.fromisoformat(after[0])), literal(after[1])))
        rows = list((await session.execute(query.order_by(t.due_at, t.id).limit(page.limit + 1))).all())
        items, cursor = make_page(rows, page.limit, lambda r: [r.due_at.isoformat(), r.id])
        return [public(r) for r in items], cursor


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
