"""Property orders paid with points: reserved and captured at once, answered either way."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import hold_account, now_utc, record_entry, spend_points
from services.governance.events import PointsPaymentSettled, publisher
from services.governance.models import PointsPayment
from services.kit.db import transaction


async def settle_points_payment(
    session: AsyncSession, *, payment_id: str, community: str, resident_id: str, points: int, order_id: str | None
) -> str:
    """Pay a property order in points, once per payment id; returns the status property is told."""
    async with transaction(session):
        query = select(PointsPayment.status).where(col(PointsPayment.payment_id) == payment_id)
        existing = (await session.exec(query)).one_or_none()
        if existing is not None:
            return existing
        status, reason = "captured", None
        if points <= 0:
            status, reason = "rejected", "invalid-points"
        else:
            acct = await hold_account(session, community, resident_id)
            try:
                async with session.begin_nested():
                    await spend_points(session, acct, points, now_utc())
                    await record_entry(
                        session,
                        acct,
                        "spend",
                        -points,
                        ref_type="points_payment",
                        ref_id=payment_id,
                        reason=f"物业订单 / property order {order_id or ''}".strip(),
                    )
            except problems.InsufficientPoints:
                status, reason = "rejected", "insufficient-points"
        session.add(
            PointsPayment(
                payment_id=payment_id,
                community=community,
                resident_id=resident_id,
                order_id=order_id,
                points=points,
                status=status,
                reason=reason,
            )
        )
        await publisher.publish(
            session,
            PointsPaymentSettled(payment_id=payment_id, community=community, status=status, reason=reason),
            key=payment_id,
        )
        return status
