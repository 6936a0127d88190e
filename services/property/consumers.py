"""Events property applies from other services: governance's redemption saga, points payments and
pledge orders; security's alarms and device outages (urgent system-filed tickets)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec
from services.property import incidents, payments, pledges, redemptions
from services.property.events import (
    GOVERNANCE_TOPIC,
    SECURITY_TOPIC,
    AlarmCleared,
    AlarmRaised,
    DeviceCameBack,
    DeviceWentOffline,
    PledgeOrdered,
    PointsPaymentSettled,
    RedemptionReserved,
)


async def on_redemption_reserved(session: AsyncSession, event: CloudEvent) -> None:
    await redemptions.fulfil_redemption(session, event.parse(RedemptionReserved))


async def on_points_payment_settled(session: AsyncSession, event: CloudEvent) -> None:
    await payments.settle_points_payment(session, event.parse(PointsPaymentSettled))


async def on_pledge_ordered(session: AsyncSession, event: CloudEvent) -> None:
    await pledges.open_pledge_order(session, event.parse(PledgeOrdered))


async def on_alarm_raised(session: AsyncSession, event: CloudEvent) -> None:
    await incidents.open_alarm_ticket(session, event.parse(AlarmRaised))


async def on_alarm_cleared(session: AsyncSession, event: CloudEvent) -> None:
    await incidents.close_alarm_ticket(session, event.parse(AlarmCleared))


async def on_device_offline(session: AsyncSession, event: CloudEvent) -> None:
    await incidents.open_outage_ticket(session, event.parse(DeviceWentOffline))


async def on_device_back_online(session: AsyncSession, event: CloudEvent) -> None:
    await incidents.close_outage_ticket(session, event.parse(DeviceCameBack))


governance_consumer = ConsumerSpec(
    group="property-governance",
    topics=[GOVERNANCE_TOPIC],
    handlers={
        RedemptionReserved.event_type: on_redemption_reserved,
        PointsPaymentSettled.event_type: on_points_payment_settled,
        PledgeOrdered.event_type: on_pledge_ordered,
    },
)

security_consumer = ConsumerSpec(
    group="property-security",
    topics=[SECURITY_TOPIC],
    handlers={
        AlarmRaised.event_type: on_alarm_raised,
        AlarmCleared.event_type: on_alarm_cleared,
        DeviceWentOffline.event_type: on_device_offline,
        DeviceCameBack.event_type: on_device_back_online,
    },
)

consumers = [governance_consumer, security_consumer]
