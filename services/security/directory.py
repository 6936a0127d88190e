"""Security's directory of property's facts: which household and building a resident belongs to
(a pass is for the resident's building; a resident reads their household's events), and a
building's steward (named on its alarms). Upserts keyed by property's ids: replays change nothing."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec
from services.security.events import PROPERTY_TOPIC, BuildingRegistered, ResidentRegistered
from services.security.models import BUILDINGS, RESIDENTS


async def record_resident(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(ResidentRegistered)
    values = {"household_id": data.household_id, "building_id": data.building_id}
    stmt = insert(RESIDENTS).values(community=data.community, resident_id=data.resident_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["community", "resident_id"], set_=values))


async def record_building(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(BuildingRegistered)
    stmt = insert(BUILDINGS).values(community=data.community, building_id=data.building_id, steward_id=data.steward_id)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["community", "building_id"], set_={"steward_id": data.steward_id})
    )


property_consumer = ConsumerSpec(
    group="security-property",
    topics=[PROPERTY_TOPIC],
    handlers={ResidentRegistered.event_type: record_resident, BuildingRegistered.event_type: record_building},
)
