"""The community registry (物业档案): buildings, households, residents, staff and stewards' rosters.

Each registration runs in one transaction and publishes its event through the outbox; a duplicate
(the same code, unit, phone or username in the community) is a clear problem, not a 500.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import table_of, transaction
from services.kit.pagination import PageParams, make_page
from services.property.events import (
    BuildingRegistered,
    HouseholdRegistered,
    HouseholdRollChanged,
    ResidentOwnerChanged,
    ResidentRegistered,
    StaffRegistered,
    publisher,
)
from services.property.models import (
    BUILDINGS,
    HOUSEHOLDS,
    RESIDENTS,
    ROSTER_SHIFTS,
    STAFF,
    Building,
    Household,
    Resident,
    RosterShift,
    Staff,
    new_id,
)
from services.property.problems import AlreadyRegistered, RecordNotFound, UnknownBuilding, UnknownHousehold, UnknownStaff
from services.property.schemas import (
    BuildingCreate,
    HouseholdCreate,
    HouseholdRollUpdate,
    ResidentCreate,
    ResidentOwnerUpdate,
    RosterIn,
    ShiftIn,
    StaffCreate,
)

Row = TypeVar("Row", bound=SQLModel)


async def flush_unique(session: AsyncSession, what: str) -> None:
    """Flush inside a savepoint so a duplicate becomes a clear problem, not a 500."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise AlreadyRegistered((f"{what}已存在", f"This {what} is already registered")) from None


async def register_building(session: AsyncSession, who: Principal, data: BuildingCreate) -> Building:
    async with transaction(session):
        building = Building(id=data.id or new_id(), community=who.community, code=data.code, name=data.name)
        session.add(building)
        await flush_unique(session, "building")
        await _publish_building(session, building)
        return building


async def _publish_building(session: AsyncSession, b: Building) -> None:
    await publisher.publish(
        session,
        BuildingRegistered(
            building_id=b.id,
            community=b.community,
            code=b.code,
            name=b.name,
            steward_id=b.steward_id,
            backup_steward_id=b.backup_steward_id,
        ),
        key=b.id,
    )


async def building_in(session: AsyncSession, community: str, building_id: str) -> Building:
    """The community's building, or `UnknownBuilding`."""
    query = select(Building).where(BUILDINGS.c.id == building_id, BUILDINGS.c.community == community)
    building = await session.scalar(query)
    if building is None:
        raise UnknownBuilding(("楼栋不存在", f"No building {building_id} in this community"))
    return building


async def register_household(session: AsyncSession, who: Principal, data: HouseholdCreate) -> Household:
    async with transaction(session):
        await building_in(session, who.community, data.building_id)
        household = Household(
            id=data.id or new_id(),
            community=who.community,
            building_id=data.building_id,
            unit=data.unit,
            exclusive_area=data.exclusive_area,
            sold=data.sold,
            buyer_key=data.buyer_key,
        )
        session.add(household)
        await flush_unique(session, "household")
        await publisher.publish(
            session,
            HouseholdRegistered(
                household_id=household.id,
                community=who.community,
                building_id=household.building_id,
                unit=household.unit,
                exclusive_area=household.exclusive_area,
                sold=household.sold,
                buyer_key=household.buyer_key,
            ),
            key=household.id,
        )
        return household


async def update_household_roll(session: AsyncSession, who: Principal, household_id: str, data: HouseholdRollUpdate) -> Household:
    """Change what an owners' vote counts of a unit; publishes the unit's whole roll entry."""
    async with transaction(session):
        query = (
            select(Household).where(HOUSEHOLDS.c.id == household_id, HOUSEHOLDS.c.community == who.community).with_for_update()
        )
        household = await session.scalar(query)
        if household is None:
            raise RecordNotFound()
        if data.exclusive_area is not None:
            household.exclusive_area = data.exclusive_area
        if data.sold is not None:
            household.sold = data.sold
        if "buyer_key" in data.model_fields_set:
            household.buyer_key = data.buyer_key
        await session.flush()
        await publisher.publish(
            session,
            HouseholdRollChanged(
                household_id=household.id,
                community=who.community,
                exclusive_area=household.exclusive_area,
                sold=household.sold,
                buyer_key=household.buyer_key,
            ),
            key=household.id,
        )
        return household


async def register_resident(session: AsyncSession, who: Principal, data: ResidentCreate) -> Resident:
    async with transaction(session):
        query = select(Household).where(HOUSEHOLDS.c.id == data.household_id, HOUSEHOLDS.c.community == who.community)
        household = await session.scalar(query)
        if household is None:
            raise UnknownHousehold()
        resident = Resident(
            id=data.id or new_id(),
            community=who.community,
            household_id=household.id,
            name=data.name,
            phone=data.phone,
            roles=list(dict.fromkeys(data.roles)),
            owner=data.owner,
        )
        session.add(resident)
        await flush_unique(session, "resident")
        await publisher.publish(
            session,
            ResidentRegistered(
                resident_id=resident.id,
                community=who.community,
                household_id=household.id,
                building_id=household.building_id,
                name=resident.name,
                phone=resident.phone,
                roles=resident.roles,
                owner=resident.owner,
            ),
            key=resident.id,
        )
        return resident


async def set_resident_owner(session: AsyncSession, who: Principal, resident_id: str, data: ResidentOwnerUpdate) -> Resident:
    """Mark a resident an owner of their household or not; publishes the change when there is one."""
    async with transaction(session):
        query = select(Resident).where(RESIDENTS.c.id == resident_id, RESIDENTS.c.community == who.community).with_for_update()
        resident = await session.scalar(query)
        if resident is None:
            raise RecordNotFound()
        if resident.owner == data.owner:
            return resident
        resident.owner = data.owner
        await session.flush()
        await publisher.publish(
            session,
            ResidentOwnerChanged(
                resident_id=resident.id, community=who.community, household_id=resident.household_id, owner=resident.owner
            ),
            key=resident.id,
        )
        return resident


async def register_staff(session: AsyncSession, who: Principal, data: StaffCreate) -> Staff:
    """Register a staff member; a steward's `buildings` and `backup_for` set each building's cover."""
    async with transaction(session):
        if (data.buildings or data.backup_for) and "steward" not in data.roles:
            raise UnknownStaff(("只有管家可以负责楼栋", "Only a steward can cover buildings"))
        staff = Staff(
            id=data.id or new_id(),
            community=who.community,
            name=data.name,
            username=data.username,
            roles=list(dict.fromkeys(data.roles)),
        )
        session.add(staff)
        await flush_unique(session, "staff member")
        for building_id in data.buildings:
            building = await building_in(session, who.community, building_id)
            building.steward_id = staff.id
            await _publish_building(session, building)
        for building_id in data.backup_for:
            building = await building_in(session, who.community, building_id)
            building.backup_steward_id = staff.id
            await _publish_building(session, building)
        await publisher.publish(
            session,
            StaffRegistered(
                staff_id=staff.id,
                community=who.community,
                name=staff.name,
                username=staff.username,
                roles=staff.roles,
                buildings=data.buildings,
                backup_for=data.backup_for,
            ),
            key=staff.id,
        )
        return staff


async def steward_in(session: AsyncSession, community: str, staff_id: str) -> Staff:
    """The community's steward, or `UnknownStaff` (also for staff who are not stewards)."""
    query = select(Staff).where(STAFF.c.id == staff_id, STAFF.c.community == community)
    staff = await session.scalar(query)
    if staff is None or "steward" not in staff.roles:
        raise UnknownStaff()
    return staff


async def set_roster(session: AsyncSession, who: Principal, staff_id: str, data: RosterIn) -> list[ShiftIn]:
    async with transaction(session):
        await steward_in(session, who.community, staff_id)
        await session.execute(ROSTER_SHIFTS.delete().where(ROSTER_SHIFTS.c.staff_id == staff_id))
        for s in data.shifts:
            session.add(RosterShift(staff_id=staff_id, weekday=s.weekday, start_minute=s.start_minute, end_minute=s.end_minute))
        return list(data.shifts)


async def get_roster(session: AsyncSession, who: Principal, staff_id: str) -> list[ShiftIn]:
    async with transaction(session):
        await steward_in(session, who.community, staff_id)
        query = (
            select(RosterShift)
            .where(ROSTER_SHIFTS.c.staff_id == staff_id)
            .order_by(ROSTER_SHIFTS.c.weekday, ROSTER_SHIFTS.c.start_minute)
        )
        rows = (await session.scalars(query)).all()
        return [ShiftIn(weekday=r.weekday, start_minute=r.start_minute, end_minute=r.end_minute) for r in rows]


async def list_rows(
    session: AsyncSession, who: Principal, model: type[Row], page: PageParams, **filters: str | None
) -> tuple[list[Row], str | None]:
    """A page of one registry table for the caller's community, in id order."""
    table = table_of(model)
    async with transaction(session):
        query = select(model).where(table.c.community == who.community)
        for column, value in filters.items():
            if value is not None:
                query = query.where(table.c[column] == value)
        after = page.after()
        if after:
            query = query.where(table.c.id > after[0])
        rows = list(await session.scalars(query.order_by(table.c.id).limit(page.limit + 1)))
        return make_page(rows, page.limit, lambda r: [r.id])


async def get_resident(session: AsyncSession, who: Principal, resident_id: str) -> Resident:
    async with transaction(session):
        query = select(Resident).where(RESIDENTS.c.id == resident_id, RESIDENTS.c.community == who.community)
        resident = await session.scalar(query)
        if resident is None:
            raise RecordNotFound()
        return resident
