"""The registry of who may log in, learned from property's events.

Property owns the registry; the gateway keeps only what a login needs (ids, phone numbers,
usernames, roles, community) in its own database. Fields it does not know are ignored.
"""

from __future__ import annotations

from pydantic import Field
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway import service
from services.kit.envelope import CloudEvent, EventData
from services.kit.inbox import ConsumerSpec

PROPERTY_TOPIC = "property.events"


class ResidentRegistered(EventData):
    event_type = "property.resident.registered.v1"
    resident_id: str
    community: str
    phone: str
    roles: list[str] = Field(default_factory=lambda: ["resident"])


class StaffRegistered(EventData):
    event_type = "property.staff.registered.v1"
    staff_id: str
    community: str
    username: str
    roles: list[str] = Field(default_factory=list)


async def on_resident_registered(session: AsyncSession, event: CloudEvent) -> None:
    data: ResidentRegistered = event.parse(ResidentRegistered)
    await service.register_resident(
        session,
        resident_id=data.resident_id,
        community=data.community,
        phone=data.phone,
        roles=data.roles,
        registered_at=event.time,
    )


async def on_staff_registered(session: AsyncSession, event: CloudEvent) -> None:
    data: StaffRegistered = event.parse(StaffRegistered)
    await service.register_staff(
        session, staff_id=data.staff_id, community=data.community, username=data.username, roles=data.roles
    )


registry_consumer = ConsumerSpec(
    group="gateway-registry",
    topics=[PROPERTY_TOPIC],
    # Registrations are rare and a new resident can wait half a second to log in; the local
    # profile's 10 ms empty fetches cost the gateway ~5% of a core while it forwards requests.
    fetch_max_wait_ms=500,
    handlers={
        ResidentRegistered.event_type: on_resident_registered,
        StaffRegistered.event_type: on_staff_registered,
    },
)
