"""Redemption fulfilment (积分换服务): governance reserved a resident's points for a property service.

The consumer opens a prepaid ticket for it, or says why it cannot; a redelivered reservation finds
the ticket it already opened (one ticket per redemption id, held by a unique constraint).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.property.catalogue import catalogue_item
from services.property.domain import Category, PaymentStatus, Priority, Role
from services.property.events import RedemptionFailed, RedemptionFulfilled, RedemptionReserved, publisher
from services.property.models import RESIDENTS, TICKETS, Resident
from services.property.tickets import NewTicket, create_ticket

REDEMPTION_ACTOR = "governance-redemption"


async def fulfil_redemption(session: AsyncSession, data: RedemptionReserved) -> None:
    """Open a prepaid ticket for a property redemption, or publish why not (runs in the consumer's transaction)."""
    if data.fulfilment != "property":
        return
    query = select(TICKETS.c.id).where(TICKETS.c.redemption_id == data.redemption_id)
    existing = await session.scalar(query)
    if existing is not None:
        await _publish_fulfilled(session, data, existing)
        return
    resident = await session.scalar(
        select(Resident).where(RESIDENTS.c.id == data.resident_id, RESIDENTS.c.community == data.community)
    )
    if resident is None:
        await _publish_failed(session, data, "unknown-resident")
        return
    item = await catalogue_item(session, data.community, data.service_code or "")
    if item is None:
        await _publish_failed(session, data, "unknown-service-code")
        return
    quantity = max(1, data.quantity)
    ticket = await create_ticket(
        session,
        NewTicket(
            community=data.community,
            resident_id=resident.id,
            household_id=resident.household_id,
            category=Category.service,
            description=f"积分兑换 {item.name} x{quantity}",
            priority=Priority.normal,
            service_code=item.code,
            quantity=quantity,
            quote_fen=item.price_fen * quantity if item.price_fen else None,
            quote_approved=True,
            payment_status=PaymentStatus.paid.value,
            redemption_id=data.redemption_id,
            actor=REDEMPTION_ACTOR,
            role=Role.system,
        ),
        datetime.now(UTC),
    )
    await _publish_fulfilled(session, data, ticket.id)


async def _publish_fulfilled(session: AsyncSession, data: RedemptionReserved, ticket_id: str) -> None:
    await publisher.publish(
        session,
        RedemptionFulfilled(redemption_id=data.redemption_id, community=data.community, ticket_id=ticket_id),
        key=data.redemption_id,
    )


async def _publish_failed(session: AsyncSession, data: RedemptionReserved, reason: str) -> None:
    await publisher.publish(
        session,
        RedemptionFailed(redemption_id=data.redemption_id, community=data.community, reason=reason),
        key=data.redemption_id,
    )
