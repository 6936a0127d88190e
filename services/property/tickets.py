"""Tickets (工单): filing one, routed to a steward on duty, and reading them back.

A ticket's status changes only through `actions.act`; this module creates tickets and writes the
first step of their audit trail, and reads them within what the caller may see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import driver_statement, fetch_alone, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page
from services.property import domain
from services.property.catalogue import catalogue_item
from services.property.domain import NO_PAYMENT, Action, Category, Priority, Role, Source, Status
from services.property.events import TicketSubmitted, publisher
from services.property.models import (
    DAILY_TICKET_COUNTS,
    HOUSEHOLDS,
    ROSTER_SHIFTS,
    TICKET_STEPS,
    Household,
    RosterShift,
    Ticket,
    TicketStep,
    new_id,
)
from services.property.photos import photo_ids, unattached_photos
from services.property.placement import Placement, placement
from services.property.problems import DailyLimitReached, UnknownService
from services.property.registry import building_in
from services.property.schemas import TicketCreate, TicketPublic
from services.property.settings import Settings
from services.property.sla import sla_policy
from services.property.visibility import visible_ticket


def public(ticket: Ticket | Row[Any], photos: list[str] | None = None) -> TicketPublic:
    out = TicketPublic.model_validate(ticket)
    out.photo_ids = photos or []
    return out


def record_step(
    session: AsyncSession,
    ticket: Ticket,
    actor: str,
    role: Role,
    action: Action,
    from_status: Status | None,
    note: str | None = None,
    **data: Any,
) -> None:
    """Append a step to the ticket's audit trail, ending in the ticket's status now."""
    session.add(
        TicketStep(
            ticket_id=ticket.id,
            actor_id=actor,
            role=role.value,
            action=action.value,
            from_status=from_status.value if from_status else None,
            to_status=ticket.status,
            note=note,
            data=data,
        )
    )


# Compiled once: SQLAlchemy caches no PostgreSQL `INSERT ... ON CONFLICT`, so built per request the
# upsert was compiled on every filing.
_COUNT_SUBMISSION = driver_statement(
    insert(DAILY_TICKET_COUNTS)
    .values(resident_id=bindparam("resident_id"), day=bindparam("day"), count=1)
    .on_conflict_do_update(
        index_elements=["resident_id", "day"],
        set_={"count": DAILY_TICKET_COUNTS.c.count + 1},
        where=DAILY_TICKET_COUNTS.c.count < bindparam("limit"),
    )
    .returning(DAILY_TICKET_COUNTS.c.count)
)


async def _count_submission(session: AsyncSession, resident_id: str, at: datetime, limit: int) -> None:
    """Count today's submission with a conditional upsert: concurrent floods cannot slip past the limit."""
    args = _COUNT_SUBMISSION.args(resident_id=resident_id, day=domain.local_day(at), limit=limit)
    if await fetch_alone(session, _COUNT_SUBMISSION.sql, *args) is None:
        raise DailyLimitReached((f"每位住户每天最多报事 {limit} 次", f"At most {limit} tickets per resident per day"))


@dataclass(frozen=True)
class NewTicket:
    """A ticket to file: a resident's (their household, whose building it goes to), or, with no
    resident, a system-filed one for another service's incident (its own building and incident id)."""

    community: str
    category: Category
    description: str
    priority: Priority
    resident_id: str | None = None
    household_id: str | None = None
    building_id: str | None = None
    service_code: str | None = None
    quantity: int = 1
    preferred_time: datetime | None = None
    quote_fen: int | None = None
    quote_approved: bool = False
    payment_status: str = NO_PAYMENT
    redemption_id: str | None = None
    pledge_id: str | None = None
    actor: str = ""
    role: Role = Role.resident
    source: Source = Source.resident
    incident_id: str | None = None


async def _route(session: AsyncSession, community: str, building_id: str, at: datetime) -> domain.Route:
    """Where a ticket filed now in this building goes, by its steward's and backup's rosters."""
    building = await building_in(session, community, building_id)
    stewards = [s for s in (building.steward_id, building.backup_steward_id) if s]
    shifts: dict[str, list[domain.Shift]] = {s: [] for s in stewards}
    if stewards:
        query = select(RosterShift).where(ROSTER_SHIFTS.c.staff_id.in_(stewards))
        for row in await session.scalars(query):
            shifts[row.staff_id].append(domain.Shift(row.weekday, row.start_minute, row.end_minute))
    return domain.route_ticket(
        building.steward_id,
        domain.on_duty(shifts.get(building.steward_id or "", []), at),
        building.backup_steward_id,
        domain.on_duty(shifts.get(building.backup_steward_id or "", []), at),
    )


async def create_ticket(session: AsyncSession, new: NewTicket, at: datetime) -> Any:
    """Route, time and write a system-filed, pledged or redeemed ticket (in the caller's
    transaction), reading its building, rosters and SLA through the session; a resident's filing
    reads them in one statement (`placement`). Both write through `write_ticket`."""
    building_id = new.building_id
    if new.household_id is not None:
        household = (await session.scalars(select(Household).where(HOUSEHOLDS.c.id == new.household_id))).one()
        building_id = household.building_id
    assert building_id is not None, "a ticket names its household or, system-filed, its building"
    assert new.resident_id is not None or new.incident_id is not None, "a system-filed ticket names its incident"
    route = await _route(session, new.community, building_id, at)
    policy = await sla_policy(session, new.community, new.category, new.priority)
    return await write_ticket(session, replace(new, building_id=building_id), route, policy, at)


# Every new ticket, its submission step and its outbox event: one statement, compiled once.
FILE_TICKET = driver_statement(
    text("""
WITH ticket AS (
    INSERT INTO tickets (id, community, resident_id, household_id, building_id, category, service_code, quantity,
        description, priority, preferred_time, status, assignee_id, quote_fen, quote_approved_at, payment_status,
        created_at, response_due_at, resolution_due_at, due_at, paused_minutes, hurry_count, source,
        redemption_id, pledge_id, incident_id)
    VALUES (:id, :community, :resident_id, :household_id, :building_id, :category, :service_code, :quantity,
        :description, :priority, :preferred_time, :status, :assignee_id, :quote_fen, :quote_approved_at, :payment_status,
        :created_at, :response_due_at, :resolution_due_at, :response_due_at, 0, 0, :source,
        :redemption_id, :pledge_id, :incident_id)
    RETURNING *),
step AS (
    INSERT INTO ticket_steps (ticket_id, actor_id, role, action, from_status, to_status, data)
    SELECT id, :actor, :role, :action, NULL, status, CAST(:step_data AS jsonb) FROM ticket),
event AS (
    INSERT INTO kit_outbox (event_id, topic, key, type, source, occurred_at, data, traceparent, tracestate)
    VALUES (:event_id, :event_topic, :id, :event_type, :event_source, :created_at, CAST(:event_data AS jsonb),
        :traceparent, :tracestate))
SELECT * FROM ticket""")
)


def ticket_args(new: NewTicket, route: domain.Route, policy: domain.SlaPolicy, at: datetime) -> tuple[Any, ...]:
    """`FILE_TICKET`'s arguments: `new` routed by `route`, its deadlines by `policy`, its
    submission step and its `TicketSubmitted` event (built here only)."""
    assert new.building_id is not None
    ticket_id = new_id()
    response_due, resolution_due = domain.deadlines(at, policy)
    event = TicketSubmitted(
        ticket_id=ticket_id,
        community=new.community,
        category=new.category.value,
        status=route.status.value,
        service_code=new.service_code,
        priority=new.priority.value,
        building_id=new.building_id,
        household_id=new.household_id,
        resident_id=new.resident_id,
        source=new.source.value,
        assignee_id=route.steward_id,
        routed_via=route.via,
        response_due_at=response_due,
        resolution_due_at=resolution_due,
        submitted_at=at,
    )
    return FILE_TICKET.args(
        id=ticket_id,
        community=new.community,
        resident_id=new.resident_id,
        household_id=new.household_id,
        building_id=new.building_id,
        category=new.category.value,
        service_code=new.service_code,
        quantity=new.quantity,
        description=new.description,
        priority=new.priority.value,
        preferred_time=new.preferred_time,
        status=route.status.value,
        assignee_id=route.steward_id,
        quote_fen=new.quote_fen,
        quote_approved_at=at if new.quote_approved else None,
        payment_status=new.payment_status,
        created_at=at,
        response_due_at=response_due,
        resolution_due_at=resolution_due,
        source=new.source.value,
        redemption_id=new.redemption_id,
        pledge_id=new.pledge_id,
        incident_id=new.incident_id,
        actor=new.actor or new.resident_id or "",
        role=new.role.value,
        action=Action.submit.value,
        step_data=orjson.dumps({"routed_via": route.via}).decode(),
        **publisher.outbox_params(event),
    )


async def write_ticket(session: AsyncSession, new: NewTicket, route: domain.Route, policy: domain.SlaPolicy, at: datetime) -> Any:
    """Write `new` with its step and event in the session's transaction; the ticket's row."""
    ticket = await fetch_alone(session, FILE_TICKET.sql, *ticket_args(new, route, policy, at))
    outbox_written(session)
    return ticket


def resident_filing(community: str, place: Placement, data: TicketCreate, quote: tuple[int | None, bool]) -> NewTicket:
    """A resident's filing as the ticket to write: theirs, their household's, in its building."""
    return NewTicket(
        community=community,
        category=data.category,
        description=data.description,
        priority=data.priority,
        resident_id=place.resident_id,
        household_id=place.household_id,
        building_id=place.building_id,
        service_code=data.service_code,
        preferred_time=data.preferred_time,
        quote_fen=quote[0],
        quote_approved=quote[1],
    )


async def submit_ticket(session: AsyncSession, who: Principal, data: TicketCreate, settings: Settings) -> TicketPublic:
    async with transaction(session):
        at = datetime.now(UTC)
        place = await placement(session, who, data.category, data.priority, at)
        quote_fen, approved = None, False
        if data.category == Category.service:
            item = await catalogue_item(session, who.community, data.service_code or "")
            if item is None:
                raise UnknownService()
            # Ordering a service at its catalogue price is the resident's approval of that price.
            quote_fen, approved = item.price_fen, item.price_fen is not None
        photos = await unattached_photos(session, who, data.photo_ids)
        await _count_submission(session, place.resident_id, at, settings.daily_ticket_limit)
        filing = resident_filing(who.community, place, data, (quote_fen, approved))
        ticket = await write_ticket(session, filing, place.route, place.policy, at)
        for photo in photos:
            photo.ticket_id = ticket.id
        return public(ticket, [p.id for p in photos])


async def get_ticket(session: AsyncSession, who: Principal, ticket_id: str) -> TicketPublic:
    async with transaction(session):
        ticket = await visible_ticket(session, who, ticket_id)
        photos = await photo_ids(session, [ticket.id])
        return public(ticket, photos[ticket.id])


async def ticket_steps(
    session: AsyncSession, who: Principal, ticket_id: str, page: PageParams
) -> tuple[list[TicketStep], str | None]:
    """A ticket's trail in the order it was written: the identity id increases with every step."""
    query = select(TicketStep).where(TICKET_STEPS.c.ticket_id == ticket_id)
    after = page.after_key(int)
    if after:
        query = query.where(TICKET_STEPS.c.id > after[0])
    async with transaction(session):
        await visible_ticket(session, who, ticket_id)
        rows = list(await session.scalars(query.order_by(TICKET_STEPS.c.id).limit(page.limit + 1)))
    return make_page(rows, page.limit, lambda step: [step.id])
