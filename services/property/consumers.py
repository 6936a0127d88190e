"""Events property applies from other services (governance's redemption saga, points payments and pledge orders)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec
from services.property import payments, pledges, redemptions
from services.property.events import GOVERNANCE_TOPIC, PledgeOrdered, PointsPaymentSettled, RedemptionReserved


async def on_redemption_reserved(session: AsyncSession, event: CloudEvent) -> None:
    await redemptions.fulfil_redemption(session, event.parse(RedemptionReserved))


async def on_points_payment_settled(session: AsyncSession, event: CloudEvent) -> None:
    await payments.settle_points_payment(session, event.parse(PointsPaymentSettled))


async def on_pledge_ordered(session: AsyncSession, event: CloudEvent) -> None:
    await pledges.open_pledge_order(session, event.parse(PledgeOrdered))


governance_consumer = ConsumerSpec(
    group="property-governance",
    topics=[GOVERNANCE_TOPIC],
    handlers={
        RedemptionReserved.event_type: on_redemption_reserved,
        PointsPaymentSettled.event_type: on_points_payment_settled,
        PledgeOrdered.event_type: on_pledge_ordered,
    },
)

consumers = [governance_consumer]
