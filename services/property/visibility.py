"""Who may see which ticket: staff see the community's, a resident only their household's, a security
guard (保安) only the security service's system-filed tickets (alarms and device outages)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.property.domain import Source
from services.property.models import RESIDENTS, TICKETS, Resident, Ticket
from services.property.problems import ResidentNotRegistered, TicketNotFound


def is_staff(who: Principal) -> bool:
    return who.has("steward", "property_admin")


def is_guard(who: Principal) -> bool:
    """A security guard who is not also property staff: reads security's tickets, works none."""
    return who.has("security_guard") and not is_staff(who)


async def resident_of(session: AsyncSession, who: Principal) -> Resident:
    """The caller's resident record, or `ResidentNotRegistered`."""
    query = select(Resident).where(RESIDENTS.c.id == who.subject, RESIDENTS.c.community == who.community)
    resident = await session.scalar(query)
    if resident is None:
        raise ResidentNotRegistered()
    return resident


async def visible_ticket(session: AsyncSession, who: Principal, ticket_id: str, *, lock: bool = False) -> Ticket:
    """The ticket if the caller may see it; 404 otherwise, so ids of other households cannot be probed."""
    query = select(Ticket).where(TICKETS.c.id == ticket_id, TICKETS.c.community == who.community)
    if lock:
        query = query.with_for_update()
    ticket = await session.scalar(query)
    if ticket is None:
        raise TicketNotFound()
    if is_staff(who):
        return ticket
    if is_guard(who):
        if ticket.source != Source.security.value:
            raise TicketNotFound()
        return ticket
    household = await session.scalar(
        select(RESIDENTS.c.household_id).where(RESIDENTS.c.id == who.subject, RESIDENTS.c.community == who.community)
    )
    if household is None or household != ticket.household_id:
        raise TicketNotFound()
    return ticket
