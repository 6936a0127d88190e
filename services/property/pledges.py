"""Service pledges (集体选购) that reached their minimum: governance publishes one order per pledging
household; property adds the offer to its catalogue (once per service code) and opens the household's
order as a service ticket with the price approved, which the resident pays on the paid-service path
(`POST /tickets/{id}/payments`, money or points). Nothing is charged before that, so an offer that
lapses leaves nothing here. A redelivered order finds the ticket it opened (unique `pledge_id`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.property.domain import Category, Priority, Role
from services.property.events import PledgeOrdered
from services.property.models import CATALOGUE_ITEMS, RESIDENTS, TICKETS, Resident
from services.property.tickets import NewTicket, create_ticket

log = logging.getLogger("property.pledges")

PLEDGE_ACTOR = "governance-pledge"


async def open_pledge_order(session: AsyncSession, data: PledgeOrdered) -> None:
    """Runs in the consumer's transaction; the catalogue row and the ticket commit with its offset."""
    if await session.scalar(select(TICKETS.c.id).where(TICKETS.c.pledge_id == data.pledge_id)) is not None:
        return
    await session.execute(
        insert(CATALOGUE_ITEMS)
        .values(
            community=data.community, code=data.service_code, name=f"{data.title}（{data.provider}）", price_fen=data.price_fen
        )
        .on_conflict_do_nothing(index_elements=[CATALOGUE_ITEMS.c.community, CATALOGUE_ITEMS.c.code])
    )
    resident = await session.scalar(
        select(Resident).where(RESIDENTS.c.id == data.resident_id, RESIDENTS.c.community == data.community)
    )
    if resident is None or resident.household_id != data.household_id:
        # Governance learnt the resident's household from property's own events, so this is a
        # registry edit in between; the order is not opened and the log says so.
        log.warning("pledge %s: resident %s is not in household %s", data.pledge_id, data.resident_id, data.household_id)
        return
    await create_ticket(
        session,
        NewTicket(
            community=data.community,
            resident_id=resident.id,
            household_id=resident.household_id,
            category=Category.service,
            description=f"集体选购 {data.title}（{data.provider}）",
            priority=Priority.normal,
            service_code=data.service_code,
            quote_fen=data.price_fen,
            # The household pledged at this price: the order's price is approved, payment is the resident's.
            quote_approved=True,
            pledge_id=data.pledge_id,
            actor=PLEDGE_ACTOR,
            role=Role.system,
        ),
        datetime.now(UTC),
    )
