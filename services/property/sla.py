"""Service levels (SLA): each community's response and resolution minutes, and the escalation job."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.property import domain
from services.property.domain import Action, Category, Priority, Role
from services.property.events import TicketSlaBreached, publisher
from services.property.models import RESOLUTION_WATCH_SQL, RESPONSE_WATCH_SQL, SLA_POLICIES, SlaPolicyRow, TicketStep
from services.property.schemas import SlaPolicyIn, SlaPolicyPublic

SLA_JOB_ACTOR = "sla-job"


async def set_sla_policy(
    session: AsyncSession, who: Principal, category: Category, priority: Priority, data: SlaPolicyIn
) -> SlaPolicyPublic:
    async with transaction(session):
        values = {"response_minutes": data.response_minutes, "resolution_minutes": data.resolution_minutes}
        await session.execute(
            insert(SLA_POLICIES)
            .values(community=who.community, category=category.value, priority=priority.value, **values)
            .on_conflict_do_update(index_elements=["community", "category", "priority"], set_=values)
        )
        return SlaPolicyPublic(category=category, priority=priority, **values)


async def list_sla_policies(session: AsyncSession, who: Principal, page: PageParams) -> tuple[list[SlaPolicyPublic], str | None]:
    """Every category and priority: the community's own minutes where it set them, else the defaults.

    The list is the fixed set of (category, priority) pairs, so it is paged by that pair in Python;
    the community's rows are read by their primary key's prefix.
    """
    after = page.after_key(str, str)
    pairs = sorted((c, p) for c, p in domain.DEFAULT_SLA if after is None or (c.value, p.value) > after)
    pairs = pairs[: page.limit + 1]
    async with transaction(session):
        query = select(SlaPolicyRow).where(SLA_POLICIES.c.community == who.community)
        rows = {(r.category, r.priority): r for r in await session.scalars(query)}
    out = []
    for category, priority in pairs:
        default = domain.DEFAULT_SLA[category, priority]
        row = rows.get((category.value, priority.value))
        out.append(
            SlaPolicyPublic(
                category=category,
                priority=priority,
                response_minutes=row.response_minutes if row else default.response_minutes,
                resolution_minutes=row.resolution_minutes if row else default.resolution_minutes,
            )
        )
    return make_page(out, page.limit, lambda policy: [policy.category.value, policy.priority.value])


async def sla_policy(session: AsyncSession, community: str, category: Category, priority: Priority) -> domain.SlaPolicy:
    """The policy a new ticket's deadlines come from: the community's row, else the default."""
    query = select(SlaPolicyRow).where(
        SLA_POLICIES.c.community == community,
        SLA_POLICIES.c.category == category.value,
        SLA_POLICIES.c.priority == priority.value,
    )
    row = await session.scalar(query)
    if row is None:
        return domain.DEFAULT_SLA[category, priority]
    return domain.SlaPolicy(row.response_minutes, row.resolution_minutes)


# What each watch compares: the deadline, the column that marks the breach, the statuses it watches.
WATCHES = {
    "response": ("response_due_at", "response_breached_at", RESPONSE_WATCH_SQL),
    "resolution": ("resolution_due_at", "resolution_breached_at", RESOLUTION_WATCH_SQL),
}


async def escalate_breaches(session: AsyncSession, batch: int = 200) -> int:
    """Claim and escalate overdue tickets; safe to run in many replicas at once.

    The claim is one conditional UPDATE over rows locked with SKIP LOCKED: a replica either wins a
    row (its `*_breached_at` was NULL and it set it) or never sees it, so each breach fires once.
    Paused tickets are not watched: their clock is stopped.
    """
    escalated = 0
    for kind, (due_col, breached_col, watched) in WATCHES.items():
        async with transaction(session):
            claim = text(f"""
                UPDATE tickets SET {breached_col} = now()
                WHERE id IN (
                    SELECT id FROM tickets
                    WHERE {breached_col} IS NULL AND {watched} AND {due_col} < now()
                    ORDER BY {due_col} LIMIT :batch FOR UPDATE SKIP LOCKED)
                  AND {breached_col} IS NULL
                RETURNING id, community, category, status, priority, assignee_id, {due_col} AS due_at
            """)
            rows = (await session.execute(claim, {"batch": batch})).all()
            for row in rows:
                session.add(
                    TicketStep(
                        ticket_id=row.id,
                        actor_id=SLA_JOB_ACTOR,
                        role=Role.system.value,
                        action=Action.escalate.value,
                        from_status=row.status,
                        to_status=row.status,
                        note=kind,
                        data={"kind": kind, "escalated_to": "property_admin"},
                    )
                )
                await publisher.publish(
                    session,
                    TicketSlaBreached(
                        ticket_id=row.id,
                        community=row.community,
                        category=row.category,
                        status=row.status,
                        priority=row.priority,
                        kind=kind,
                        due_at=row.due_at,
                        assignee_id=row.assignee_id,
                    ),
                    key=row.id,
                )
            escalated += len(rows)
    return escalated
