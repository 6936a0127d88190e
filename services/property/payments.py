"""Paying for a value-added service: by money through the provider port, or by points through governance.

A basic service is free, so only a `service` ticket with an approved quote can be paid; the
database refuses a payment order on any other ticket too (see `PaymentOrder`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.kit.payments import PaymentProvider
from services.property import domain
from services.property.domain import LIVE_PAYMENTS, Category, PaymentMethod, PaymentStatus, Status
from services.property.events import PaymentSettled, PointsPaymentRequested, PointsPaymentSettled, publisher
from services.property.models import PAYMENT_ORDERS, TICKETS, PaymentOrder, new_id
from services.property.problems import NothingToPay, PaymentDeclined
from services.property.settings import Settings
from services.property.visibility import visible_ticket


async def pay(
    session: AsyncSession,
    who: Principal,
    ticket_id: str,
    method: PaymentMethod,
    settings: Settings,
    provider: PaymentProvider,
) -> PaymentOrder:
    async with transaction(session):
        ticket = await visible_ticket(session, who, ticket_id, lock=True)
        if not domain.is_paid(Category(ticket.category)):
            raise domain.BasicServiceIsFree()
        if ticket.quote_fen is None or ticket.quote_approved_at is None or ticket.payment_status in LIVE_PAYMENTS:
            raise NothingToPay()
        if ticket.status == Status.cancelled.value:
            raise NothingToPay()
        order = PaymentOrder(
            id=new_id(),
            community=who.community,
            ticket_id=ticket.id,
            ticket_category=ticket.category,
            resident_id=who.subject,
            method=method.value,
            amount_fen=ticket.quote_fen,
            status=PaymentStatus.pending.value,
        )
        if method == PaymentMethod.points:
            order.points = domain.points_for(ticket.quote_fen, settings.fen_per_point)
            session.add(order)
            ticket.payment_status = PaymentStatus.pending.value
            await session.flush()
            await publisher.publish(
                session,
                PointsPaymentRequested(
                    payment_id=order.id,
                    community=who.community,
                    resident_id=who.subject,
                    points=order.points,
                    order_id=ticket.id,
                ),
                key=order.id,
            )
            return order
        # The fake answers at once; a real provider would confirm by callback into a second use case.
        result = await provider.charge(reference=order.id, amount_fen=order.amount_fen, method=order.method)
        if not result.approved:
            raise PaymentDeclined(result.reason)
        order.status, order.provider_ref, order.settled_at = PaymentStatus.paid.value, result.provider_ref, datetime.now(UTC)
        session.add(order)
        ticket.payment_status = PaymentStatus.paid.value
        await session.flush()
        await _publish_settled(session, order)
        return order


async def _publish_settled(session: AsyncSession, order: PaymentOrder) -> None:
    await publisher.publish(
        session,
        PaymentSettled(
            payment_id=order.id,
            community=order.community,
            ticket_id=order.ticket_id,
            method=order.method,
            status=order.status,
            amount_fen=order.amount_fen,
        ),
        key=order.ticket_id,
    )


async def list_payments(
    session: AsyncSession, who: Principal, ticket_id: str, page: PageParams
) -> tuple[list[PaymentOrder], str | None]:
    """A ticket's payments, oldest first; the id breaks a tie between orders made in one instant."""
    query = select(PaymentOrder).where(PAYMENT_ORDERS.c.ticket_id == ticket_id)
    after = page.after_key(datetime, str)
    if after:
        query = query.where(after_key_condition([PAYMENT_ORDERS.c.created_at, PAYMENT_ORDERS.c.id], after))
    query = query.order_by(PAYMENT_ORDERS.c.created_at, PAYMENT_ORDERS.c.id).limit(page.limit + 1)
    async with transaction(session):
        await visible_ticket(session, who, ticket_id)
        rows = list(await session.scalars(query))
    return make_page(rows, page.limit, lambda order: [order.created_at.isoformat(), order.id])


async def settle_points_payment(session: AsyncSession, data: PointsPaymentSettled) -> None:
    """Governance captured or rejected the points (runs in the consumer's transaction)."""
    query = (
        select(PaymentOrder)
        .where(PAYMENT_ORDERS.c.id == data.payment_id, PAYMENT_ORDERS.c.community == data.community)
        .with_for_update()
    )
    order = await session.scalar(query)
    if order is None or order.status != PaymentStatus.pending:
        return
    settled = PaymentStatus.paid if data.status == "captured" else PaymentStatus.rejected
    order.status, order.reason, order.settled_at = settled.value, data.reason, datetime.now(UTC)
    await session.execute(update(TICKETS).where(TICKETS.c.id == order.ticket_id).values(payment_status=settled.value))
    await _publish_settled(session, order)
