"""Property's registry and settings routes: buildings, households, residents, staff, catalogue, SLA.

Routes parse, authorize, call one use case and shape the response. Each route's docstring is a
one-line summary, then what the route does and who may call it; it is the operation's OpenAPI
description.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Month
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.property import catalogue, registry, sla, stewards
from services.property import problems as p
from services.property.api import Admin, StaffOnly
from services.property.domain import Category, Priority
from services.property.models import Building, CatalogueItem, Household, Resident, Staff
from services.property.schemas import (
    BuildingCreate,
    BuildingPublic,
    CatalogueItemCreate,
    CatalogueItemPublic,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdRollUpdate,
    Id,
    ResidentCreate,
    ResidentOwnerUpdate,
    ResidentPublic,
    RosterIn,
    RosterPublic,
    SlaPolicyIn,
    SlaPolicyPublic,
    StaffCreate,
    StaffPublic,
    StewardFigures,
)

registry_routes = APIRouter(tags=["registry"])
settings_routes = APIRouter(tags=["settings"])


# --- registry (物业档案) -----------------------------------------------------------------------------


@registry_routes.post(
    "/buildings",
    status_code=201,
    response_model=BuildingPublic,
    responses=problem_responses(p.AlreadyRegistered),
)
async def register_building(body: BuildingCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a building.

    A property admin registers a building of their community by its code (unique there), with an
    optional fixed id. Publishes `property.building.registered.v1`.
    """
    return await idem.run(session, body, lambda: registry.register_building(session, who, body), BuildingPublic)


@registry_routes.get("/buildings", response_model=Page[BuildingPublic])
async def list_buildings(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    """List the community's buildings.

    Anyone of the community may call it; cursor-paginated in id order.
    """
    items, cursor = await registry.list_rows(session, who, Building, page)
    return Page[BuildingPublic](items=items, next_cursor=cursor)


@registry_routes.post(
    "/households",
    status_code=201,
    response_model=HouseholdPublic,
    responses=problem_responses(p.UnknownBuilding, p.AlreadyRegistered),
)
async def register_household(body: HouseholdCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a household.

    A property admin registers a unit in one of the community's buildings (unique per building).
    Publishes `property.household.registered.v1`.
    """
    return await idem.run(session, body, lambda: registry.register_household(session, who, body), HouseholdPublic)


@registry_routes.patch(
    "/households/{household_id}",
    response_model=HouseholdPublic,
    responses=problem_responses(p.RecordNotFound),
)
async def update_household_roll(household_id: Id, body: HouseholdRollUpdate, who: Admin, session: SessionDep) -> Any:
    """Change what an owners' vote counts of a unit.

    A property admin sets the exclusive area (hundredths of a m²), whether the developer has sold the
    unit and the buyer key (units of one buyer count once). Publishes
    `property.household.roll_changed.v1`; decisions already open keep the roll they froze.
    """
    return await registry.update_household_roll(session, who, household_id, body)


@registry_routes.get("/households", response_model=Page[HouseholdPublic])
async def list_households(
    who: StaffOnly, session: SessionDep, page: PageDep, building_id: Annotated[Id | None, Query()] = None
) -> Any:
    """List the community's households.

    Staff (property admins, stewards, community workers) may call it, optionally for one building;
    cursor-paginated in id order.
    """
    items, cursor = await registry.list_rows(session, who, Household, page, building_id=building_id)
    return Page[HouseholdPublic](items=items, next_cursor=cursor)


@registry_routes.post(
    "/residents",
    status_code=201,
    response_model=ResidentPublic,
    responses=problem_responses(p.UnknownHousehold, p.AlreadyRegistered),
)
async def register_resident(body: ResidentCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a resident.

    A property admin registers a resident of a household with name, phone (unique in the community)
    and roles. Publishes `property.resident.registered.v1`.
    """
    return await idem.run(session, body, lambda: registry.register_resident(session, who, body), ResidentPublic)


@registry_routes.get("/residents", response_model=Page[ResidentPublic])
async def list_residents(
    who: StaffOnly, session: SessionDep, page: PageDep, household_id: Annotated[Id | None, Query()] = None
) -> Any:
    """List the community's residents.

    Staff may call it, optionally for one household; cursor-paginated in id order.
    """
    items, cursor = await registry.list_rows(session, who, Resident, page, household_id=household_id)
    return Page[ResidentPublic](items=items, next_cursor=cursor)


@registry_routes.patch(
    "/residents/{resident_id}",
    response_model=ResidentPublic,
    responses=problem_responses(p.RecordNotFound),
)
async def set_resident_owner(resident_id: Id, body: ResidentOwnerUpdate, who: Admin, session: SessionDep) -> Any:
    """Mark a resident an owner (业主) of their household, or not.

    A property admin records a sale, or corrects a tenant recorded as an owner. Publishes
    `property.resident.owner_changed.v1` when the flag changes; decisions already open keep the
    voters they froze.
    """
    return await registry.set_resident_owner(session, who, resident_id, body)


@registry_routes.get("/residents/{resident_id}", response_model=ResidentPublic, responses=problem_responses(p.RecordNotFound))
async def get_resident(resident_id: Id, who: CurrentPrincipal, session: SessionDep) -> Any:
    """Read one resident.

    A resident may read their own record, staff anyone's in the community; anything else is 404.
    """
    if resident_id != who.subject and not who.is_staff:
        raise p.RecordNotFound()
    return await registry.get_resident(session, who, resident_id)


@registry_routes.post(
    "/staff",
    status_code=201,
    response_model=StaffPublic,
    responses=problem_responses(p.UnknownBuilding, p.UnknownStaff, p.AlreadyRegistered),
)
async def register_staff(body: StaffCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a staff member.

    A property admin registers staff by username (unique in the community); a steward's `buildings`
    and `backup_for` make them each building's steward or backup. Publishes
    `property.staff.registered.v1`, and `property.building.registered.v1` for each building whose
    cover changes.
    """
    return await idem.run(session, body, lambda: registry.register_staff(session, who, body), StaffPublic)


@registry_routes.get("/staff", response_model=Page[StaffPublic])
async def list_staff(who: StaffOnly, session: SessionDep, page: PageDep) -> Any:
    """List the community's staff.

    Staff may call it; cursor-paginated in id order.
    """
    items, cursor = await registry.list_rows(session, who, Staff, page)
    return Page[StaffPublic](items=items, next_cursor=cursor)


@registry_routes.put("/staff/{staff_id}/roster", response_model=RosterPublic, responses=problem_responses(p.UnknownStaff))
async def set_roster(staff_id: Id, body: RosterIn, who: Admin, session: SessionDep) -> Any:
    """Replace a steward's weekly duty roster (值班表).

    A property admin sets the shifts (weekday, start and end minute, in the community's local
    time) by which new tickets are routed to a steward on duty.
    """
    shifts = await registry.set_roster(session, who, staff_id, body)
    return RosterPublic(staff_id=staff_id, shifts=shifts)


@registry_routes.get("/staff/{staff_id}/roster", response_model=RosterPublic, responses=problem_responses(p.UnknownStaff))
async def get_roster(staff_id: Id, who: StaffOnly, session: SessionDep) -> Any:
    """Read a steward's weekly duty roster.

    Staff may call it; the shifts come in weekday and start order.
    """
    return RosterPublic(staff_id=staff_id, shifts=await registry.get_roster(session, who, staff_id))


@registry_routes.get("/staff/{staff_id}/figures", response_model=StewardFigures, responses=problem_responses(p.UnknownStaff))
async def steward_figures(
    staff_id: Id,
    who: StaffOnly,
    session: SessionDep,
    month: Annotated[Month, Query(description="YYYY-MM, local time")],
) -> Any:
    """Read a steward's figures for a month.

    Tickets assigned, completed, completed on time, on-time rate and average rating, for tickets
    created in the local month. Property admins and community workers may read any steward's; a
    steward only their own.
    """
    if who.has("steward") and not who.has("property_admin", "community_worker") and staff_id != who.subject:
        raise Forbidden(("管家只能查看自己的统计", "A steward may see only their own figures"))
    return await stewards.steward_figures(session, who, staff_id, month)


# --- catalogue and SLA settings -------------------------------------------------------------------


@settings_routes.post(
    "/catalogue",
    status_code=201,
    response_model=CatalogueItemPublic,
    responses=problem_responses(p.AlreadyRegistered),
)
async def add_catalogue_item(body: CatalogueItemCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Add a value-added service to the catalogue.

    A property admin adds a service (增值服务) residents may order, by code (unique in the
    community); without `price_fen` it is quoted on site.
    """
    return await idem.run(session, body, lambda: catalogue.add_catalogue_item(session, who, body), CatalogueItemPublic)


@settings_routes.get("/catalogue", response_model=Page[CatalogueItemPublic])
async def list_catalogue(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    """List the value-added catalogue.

    Anyone of the community may call it; cursor-paginated in id order.
    """
    items, cursor = await registry.list_rows(session, who, CatalogueItem, page)
    return Page[CatalogueItemPublic](items=items, next_cursor=cursor)


@settings_routes.put("/sla-policies/{category}/{priority}", response_model=SlaPolicyPublic)
async def set_sla_policy(category: Category, priority: Priority, body: SlaPolicyIn, who: Admin, session: SessionDep) -> Any:
    """Set the SLA for a category and priority.

    A property admin sets the response and resolution minutes that tickets filed from now on get
    as deadlines; tickets already filed keep theirs.
    """
    return await sla.set_sla_policy(session, who, category, priority, body)


@settings_routes.get("/sla-policies", response_model=Page[SlaPolicyPublic])
async def list_sla_policies(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[SlaPolicyPublic]:
    """List the SLA of every category and priority.

    By category then priority, cursor-paginated. Anyone of the community may call it; where the
    community set none, the default is shown.
    """
    items, cursor = await sla.list_sla_policies(session, who, page)
    return Page[SlaPolicyPublic](items=items, next_cursor=cursor)
