"""Events parking applies from other services: security's visitor passes with a plate, which the gate
lets in without a booking, and their revocations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec
from services.parking import visitors
from services.parking.events import SECURITY_TOPIC, PassCarAllowed, PassRevoked


async def on_car_allowed(session: AsyncSession, event: CloudEvent) -> None:
    await visitors.allow_car(session, event.parse(PassCarAllowed))


async def on_pass_revoked(session: AsyncSession, event: CloudEvent) -> None:
    await visitors.revoke(session, event.parse(PassRevoked), datetime.now(UTC))


security_consumer = ConsumerSpec(
    group="parking-security",
    topics=[SECURITY_TOPIC],
    handlers={PassCarAllowed.event_type: on_car_allowed, PassRevoked.event_type: on_pass_revoked},
)

consumers = [security_consumer]
