"""Notify's directory: the facts other services publish that decide who is told and where an SMS goes.

Each is an upsert keyed by the publisher's id, so a replayed registration changes nothing.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import table_of
from services.kit.envelope import CloudEvent
from services.notify import events as ev
from services.notify.catalogue import BuildingBackup, Named, Recipient, StaffInRole, TicketResident
from services.notify.models import KnownBuilding, KnownRelative, KnownTicket, Person

buildings = table_of(KnownBuilding)
tickets = table_of(KnownTicket)
people = table_of(Person)
relatives = table_of(KnownRelative)


async def record_building(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ev.BuildingRegistered)
    values = {"steward_id": data.steward_id, "backup_steward_id": data.backup_steward_id}
    stmt = insert(buildings).values(community=data.community, building_id=data.building_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["community", "building_id"], set_=values))


async def record_resident(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ev.ResidentRegistered)
    stmt = insert(people).values(community=data.community, person_id=data.resident_id, phone=data.phone)
    await session.execute(stmt.on_conflict_do_update(index_elements=["community", "person_id"], set_={"phone": data.phone}))


async def record_staff(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ev.StaffRegistered)
    stmt = insert(people).values(community=data.community, person_id=data.staff_id, roles=data.roles)
    await session.execute(stmt.on_conflict_do_update(index_elements=["community", "person_id"], set_={"roles": data.roles}))


async def record_ticket(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ev.TicketSubmitted)
    stmt = insert(tickets).values(
        community=data.community, ticket_id=data.ticket_id, resident_id=data.resident_id, building_id=data.building_id
    )
    await session.execute(stmt.on_conflict_do_nothing())


async def record_relative(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ev.RelativeVerified)
    rows = [
        {"community": data.community, "person_id": a, "relative_id": b}
        for a, b in ((data.member_id, data.relative_id), (data.relative_id, data.member_id))
    ]
    await session.execute(insert(relatives).values(rows).on_conflict_do_nothing())


async def relatives_copied(session: AsyncSession, community: str, person: str) -> list[str]:
    """The verified relatives of `person`, if they asked for copies of their messages; else none."""
    query = (
        select(relatives.c.relative_id)
        .join(people, (people.c.community == relatives.c.community) & (people.c.person_id == relatives.c.person_id))
        .where(relatives.c.community == community, relatives.c.person_id == person, people.c.copy_to_relatives)
        .order_by(relatives.c.relative_id)
    )
    return [str(v) for v in (await session.execute(query)).scalars().all()]


DIRECTORY = {
    ev.RelativeVerified.event_type: record_relative,
    ev.BuildingRegistered.event_type: record_building,
    ev.ResidentRegistered.event_type: record_resident,
    ev.StaffRegistered.event_type: record_staff,
    ev.TicketSubmitted.event_type: record_ticket,
}


async def recipients_of(session: AsyncSession, recipient: Recipient, community: str, data: dict[str, object]) -> list[str]:
    """The people one of a kind's recipient rules names for this event's data."""
    match recipient:
        case Named(field):
            value = data.get(field)
            return [value] if isinstance(value, str) and value else []
        case TicketResident():
            query = select(tickets.c.resident_id).where(
                tickets.c.community == community, tickets.c.ticket_id == data.get("ticket_id")
            )
        case BuildingBackup():
            query = (
                select(buildings.c.backup_steward_id)
                .join(
                    tickets, (tickets.c.community == buildings.c.community) & (tickets.c.building_id == buildings.c.building_id)
                )
                .where(tickets.c.community == community, tickets.c.ticket_id == data.get("ticket_id"))
            )
        case StaffInRole(field):
            role = data.get(field)
            query = select(people.c.person_id).where(
                people.c.community == community, func.array_position(people.c.roles, role).isnot(None)
            )
    found = (await session.execute(query)).scalars().all()
    return sorted({str(v) for v in found if v})
