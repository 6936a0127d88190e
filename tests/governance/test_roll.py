"""Governance's projection of the registry's roll, fed by property's events."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.governance.decision_models import ROLL_UNITS
from services.governance.models import Resident
from tests.governance.conftest import Community, consumers_ready, wait_until


async def unit_row(community: Community, household_id: str) -> tuple[int, bool, str | None] | None:
    async with community.svc.state.sessionmaker() as session, session.begin():
        row = (
            await session.execute(
                select(ROLL_UNITS.c.area, ROLL_UNITS.c.sold, ROLL_UNITS.c.buyer_key).where(
                    ROLL_UNITS.c.community == community.id, ROLL_UNITS.c.household_id == household_id
                )
            )
        ).first()
    return None if row is None else (row.area, row.sold, row.buyer_key)


async def test_registered_and_changed_units_and_owners_reach_the_projection(community: Community) -> None:
    await consumers_ready(community.svc)
    unit, owner = str(uuid.uuid4()), str(uuid.uuid4())
    await community.publish(
        "property.events",
        "property.household.registered.v1",
        unit,
        {"household_id": unit, "building_id": "b", "unit": "101", "exclusive_area": 9000, "sold": False},
    )
    await community.publish(
        "property.events",
        "property.resident.registered.v1",
        owner,
        {"resident_id": owner, "household_id": unit, "building_id": "b", "name": "x", "phone": "1", "roles": [], "owner": True},
    )

    async def registered() -> bool:
        return await unit_row(community, unit) == (9000, False, None)

    await wait_until(registered)
    await community.publish(
        "property.events",
        "property.household.roll_changed.v1",
        unit,
        {"household_id": unit, "exclusive_area": 9100, "sold": True, "buyer_key": "zhang"},
    )

    async def changed() -> bool:
        return await unit_row(community, unit) == (9100, True, "zhang")

    await wait_until(changed)

    async def owner_known() -> bool:
        async with community.svc.state.sessionmaker() as session, session.begin():
            resident = await session.get(Resident, (community.id, owner))
        return resident is not None and resident.owner

    await wait_until(owner_known)


async def test_an_owner_flag_change_reaches_the_projection(community: Community) -> None:
    await consumers_ready(community.svc)
    resident = str(uuid.uuid4())
    data = {"resident_id": resident, "household_id": "h1", "building_id": "b", "name": "x", "phone": "1", "roles": []}
    await community.publish("property.events", "property.resident.registered.v1", resident, {**data, "owner": False})
    await community.publish(
        "property.events",
        "property.resident.owner_changed.v1",
        resident,
        {"resident_id": resident, "household_id": "h1", "owner": True},
    )

    async def owner_now() -> bool:
        async with community.svc.state.sessionmaker() as session, session.begin():
            row = await session.get(Resident, (community.id, resident))
        return row is not None and row.owner and row.household_id == "h1"

    await wait_until(owner_now)
