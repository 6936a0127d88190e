"""Events property applies from other services (governance's redemption saga and points payments)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec
from services.property import payments, redemptions
from services.property.events import GOVERNANCE_TOPIC, PointsPaymentSettled, RedemptionReserved


async def on_redemption_reserved(session: AsyncSession, event: CloudEvent) -> None:
    await redemptions.fulfil_redemption(session, event.parse(RedemptionReserved))


async def on_points_payment_settled(session: AsyncSession, event: CloudEvent) -> None:
    await payments.settle_points_payment(session, event.parse(PointsPaymentSettled))


governance_consumer = ConsumerSpec(
    group="property-governance",
    topics=[GOVERNANCE_TOPIC],
    handlers={
        RedemptionReserved.event_type: on_redemption_reserved,
        PointsPaymentSettled.event_type: on_points_payment_settled,
    },
)

consumers = [governance_consumer]
