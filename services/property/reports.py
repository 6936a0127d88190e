"""Dashboard figures and exports (报表): SLA statistics by building, steward or category over a
period of local days, and the ticket rows of a CSV export.

Read-only use cases: one statement each, no outbox (nothing happened that others must hear of).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, FromClause, and_, func, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.problems import ValidationFailed
from services.property import domain
from services.property.listing import TicketFilters, conditions
from services.property.models import BUILDINGS, HOUSEHOLDS, OPEN_SQL, STAFF, TICKETS
from services.property.schemas import SlaGroup, SlaStats

GroupBy = Literal["building", "steward", "category"]
MAX_PERIOD_DAYS = 366
# An export is one response, read whole: a period with more tickets is asked to be narrowed.
MAX_EXPORT_ROWS = 50_000

TICKET_COLUMNS = (
    "id",
    "created_at",
    "status",
    "category",
    "priority",
    "building",
    "unit",
    "assignee",
    "response_due_at",
    "resolution_due_at",
    "responded_at",
    "completed_at",
    "response_breached_at",
    "resolution_breached_at",
    "rating_overall",
    "description",
)


def period(since: date, until: date) -> tuple[datetime, datetime]:
    """The instants that begin the first local day and end the last (exclusive)."""
    if until < since:
        raise ValidationFailed(("结束日期早于开始日期", "`until` is before `since`"))
    if (until - since).days >= MAX_PERIOD_DAYS:
        raise ValidationFailed((f"统计区间最长 {MAX_PERIOD_DAYS} 天", f"A period is at most {MAX_PERIOD_DAYS} days"))
    start = datetime.combine(since, datetime.min.time(), domain.LOCAL_TZ)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), domain.LOCAL_TZ)
    return start, end


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


async def sla_stats(session: AsyncSession, who: Principal, since: date, until: date, by: GroupBy) -> SlaStats:
    """Tickets submitted in the period, grouped: completed, on time, breaches, still open, rating."""
    start, end = period(since, until)
    t = TICKETS.c
    key: ColumnElement[Any]
    label: ColumnElement[Any]
    source: FromClause
    if by == "building":
        key, label = t.building_id, BUILDINGS.c.name
        source = TICKETS.outerjoin(BUILDINGS, BUILDINGS.c.id == t.building_id)
    elif by == "steward":
        key, label = t.assignee_id, STAFF.c.name
        source = TICKETS.outerjoin(STAFF, STAFF.c.id == t.assignee_id)
    else:
        key, label = t.category, t.category
        source = TICKETS
    done = t.completed_at.is_not(None)
    query = (
        select(
            key.label("key"),
            func.max(label).label("label"),
            func.count().label("tickets"),
            func.count().filter(done).label("completed"),
            func.count().filter(and_(done, t.completed_at <= t.resolution_due_at)).label("on_time"),
            func.count(t.response_breached_at).label("response_breached"),
            func.count(t.resolution_breached_at).label("resolution_breached"),
            func.count().filter(text(OPEN_SQL)).label("open"),
            func.avg(t.rating_overall).label("average_rating"),
        )
        .select_from(source)
        .where(t.community == who.community, t.created_at >= start, t.created_at < end)
        .group_by(key)
        .order_by(func.count().desc(), key)
    )
    async with transaction(session):
        rows = (await session.execute(query)).all()
    groups = [
        SlaGroup(
            key=r.key,
            label=r.label,
            tickets=r.tickets,
            completed=r.completed,
            on_time=r.on_time,
            on_time_rate=_rate(r.on_time, r.completed),
            response_breached=r.response_breached,
            resolution_breached=r.resolution_breached,
            open=r.open,
            average_rating=round(float(r.average_rating), 2) if r.average_rating is not None else None,
        )
        for r in rows
    ]
    return SlaStats(by=by, since=since.isoformat(), until=until.isoformat(), groups=groups)


async def ticket_rows(
    session: AsyncSession, who: Principal, since: date, until: date, filters: TicketFilters
) -> list[tuple[Any, ...]]:
    """The community's tickets submitted in the period, oldest first, as the export's rows."""
    start, end = period(since, until)
    t, h = TICKETS.c, HOUSEHOLDS.c
    query = (
        select(
            t.id,
            t.created_at,
            t.status,
            t.category,
            t.priority,
            BUILDINGS.c.name,
            h.unit,
            STAFF.c.name,
            t.response_due_at,
            t.resolution_due_at,
            t.responded_at,
            t.completed_at,
            t.response_breached_at,
            t.resolution_breached_at,
            t.rating_overall,
            t.description,
        )
        .select_from(
            TICKETS.outerjoin(HOUSEHOLDS, h.id == t.household_id)  # a system-filed ticket has none
            .join(BUILDINGS, BUILDINGS.c.id == t.building_id)
            .outerjoin(STAFF, STAFF.c.id == t.assignee_id)
        )
        .where(
            t.community == who.community,
            t.created_at >= start,
            t.created_at < end,
            *conditions(filters.present(), filters.breached),
        )
        .order_by(t.created_at, t.id)
        .limit(MAX_EXPORT_ROWS + 1)
    )
    async with transaction(session):
        rows = [tuple(r) for r in (await session.execute(query, filters.params())).all()]
    if len(rows) > MAX_EXPORT_ROWS:
        raise ValidationFailed(
            (f"超过 {MAX_EXPORT_ROWS} 条，请缩小区间或筛选", f"More than {MAX_EXPORT_ROWS} tickets: narrow the period or filter")
        )
    return rows
