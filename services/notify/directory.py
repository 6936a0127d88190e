"""Notify's directory: the facts other services publish that decide who is told and where an SMS goes.

Each is an upsert keyed by the publisher's id, so a replayed registration changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import table_of
from services.kit.envelope import CloudEvent
from services.notify import events as ev
from services.notify.catalogue import BuildingBackup, Named, Recipient, StaffHolding, StaffInRole, TicketResident
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


DIRECTORY = {
    ev.RelativeVerified.event_type: record_relative,
    ev.BuildingRegistered.event_type: record_building,
    ev.ResidentRegistered.event_type: record_resident,
    ev.StaffRegistered.event_type: record_staff,
    ev.TicketSubmitted.event_type: record_ticket,
}


Pair = tuple[str, str]  # (community, id)

# A batch's lookups take their keys as arrays (`unnest`): one statement text whatever the batch's
# size, so it is compiled and prepared once, not once per size as an `IN (...)` list would be.
TICKETS_OF = text(
    """
    SELECT t.community, t.ticket_id, t.resident_id, b.backup_steward_id
    FROM unnest(CAST(:communities AS text[]), CAST(:ids AS text[])) AS k(community, ticket_id)
    JOIN tickets t USING (community, ticket_id)
    LEFT JOIN buildings b ON b.community = t.community AND b.building_id = t.building_id
    """
)
ROLE_HOLDERS = text(
    """
    SELECT community, person_id, roles FROM people
    WHERE community = ANY(CAST(:communities AS text[])) AND roles && CAST(:roles AS text[])
    """
)
RELATIVES_COPIED = text(
    """
    SELECT r.community, r.person_id, r.relative_id
    FROM unnest(CAST(:communities AS text[]), CAST(:people AS text[])) AS k(community, person_id)
    JOIN relatives r USING (community, person_id)
    JOIN people p USING (community, person_id)
    WHERE p.copy_to_relatives
    ORDER BY r.relative_id
    """
)


def unzip(pairs: set[Pair]) -> tuple[list[str], list[str]]:
    """Sorted pairs as two arrays, for an `unnest` of keys."""
    ordered = sorted(pairs)
    return [a for a, _ in ordered], [b for _, b in ordered]


@dataclass(frozen=True)
class Known:
    """What the directory knows that one batch's recipient rules need: read once per batch."""

    ticket_residents: dict[Pair, str] = field(default_factory=dict)
    ticket_backups: dict[Pair, str] = field(default_factory=dict)
    role_holders: dict[Pair, list[str]] = field(default_factory=dict)  # (community, role) -> people

    def recipients(self, recipient: Recipient, community: str, data: Mapping[str, object]) -> list[str]:
        """The people one of a kind's recipient rules names for this event's data."""
        match recipient:
            case Named(name):
                value = data.get(name)
                return [value] if isinstance(value, str) and value else []
            case TicketResident():
                found = [self.ticket_residents.get((community, str(data.get("ticket_id"))))]
            case BuildingBackup():
                found = [self.ticket_backups.get((community, str(data.get("ticket_id"))))]
            case StaffInRole(name):
                found = list(self.role_holders.get((community, str(data.get(name))), ()))
            case StaffHolding(role):
                found = list(self.role_holders.get((community, role), ()))
        return sorted({v for v in found if v})


async def read_known(session: AsyncSession, wanted: Sequence[tuple[Recipient, str, Mapping[str, object]]]) -> Known:
    """One query for the tickets and one for the role holders the batch's rules name (none if unneeded)."""
    ticket_keys = {
        (community, str(data.get("ticket_id")))
        for recipient, community, data in wanted
        if isinstance(recipient, TicketResident | BuildingBackup)
    }
    role_keys = {
        (community, str(data.get(recipient.field))) for recipient, community, data in wanted if isinstance(recipient, StaffInRole)
    }
    role_keys |= {(community, recipient.role) for recipient, community, _ in wanted if isinstance(recipient, StaffHolding)}
    known = Known()
    if ticket_keys:
        communities, ids = unzip(ticket_keys)
        for row in (await session.execute(TICKETS_OF, {"communities": communities, "ids": ids})).all():
            known.ticket_residents[(row.community, row.ticket_id)] = row.resident_id
            if row.backup_steward_id:
                known.ticket_backups[(row.community, row.ticket_id)] = row.backup_steward_id
    if role_keys:
        communities, roles = unzip(role_keys)
        for row in (await session.execute(ROLE_HOLDERS, {"communities": communities, "roles": roles})).all():
            for role in row.roles:
                if (row.community, role) in role_keys:
                    known.role_holders.setdefault((row.community, role), []).append(row.person_id)
    return known


async def relatives_copied(session: AsyncSession, members: set[Pair]) -> dict[Pair, list[str]]:
    """The verified relatives of each member who asked for copies of their messages (one query)."""
    if not members:
        return {}
    communities, members_ = unzip(members)
    rows = (await session.execute(RELATIVES_COPIED, {"communities": communities, "people": members_})).all()
    copied: dict[Pair, list[str]] = {}
    for row in rows:
        copied.setdefault((row.community, row.person_id), []).append(row.relative_id)
    return copied
