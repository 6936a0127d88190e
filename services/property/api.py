"""Property's routes: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Month
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.property import problems as p
from services.property import service
from services.property.domain import Action, Category, Priority, Status
from services.property.models import Building, CatalogueItem, Household, Resident, Staff
from services.property.schemas import (
    BuildingCreate,
    BuildingPublic,
    CatalogueItemCreate,
    CatalogueItemPublic,
    FollowUpIn,
    HandOverIn,
    HouseholdCreate,
    HouseholdPublic,
    Id,
    PauseIn,
    PaymentIn,
    PaymentPublic,
    PhotoPublic,
    QuoteIn,
    RateIn,
    Reason,
    ResidentCreate,
    ResidentPublic,
    RosterIn,
    RosterPublic,
    SlaPolicyIn,
    SlaPolicyPublic,
    StaffCreate,
    StaffPublic,
    StepPublic,
    StewardFigures,
    TicketCreate,
    TicketPublic,
)
from services.property.settings import Settings

Admin = Annotated[Principal, require_roles("property_admin")]
StaffOnly = Annotated[Principal, require_roles("property_admin", "steward", "community_worker")]
Steward = Annotated[Principal, require_roles("steward", "property_admin")]
ResidentOnly = Annotated[Principal, require_roles("resident")]
TicketId = Annotated[Id, Path(description="Ticket id")]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


registry = APIRouter(tags=["registry"])
tickets = APIRouter(tags=["tickets"])
admin = APIRouter(tags=["settings"])


# --- registry (物业档案) -----------------------------------------------------------------------------


@registry.post(
    "/buildings",
    status_code=201,
    response_model=BuildingPublic,
    responses=problem_responses(p.AlreadyRegistered),
)
async def register_building(body: BuildingCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_building(session, who, body), BuildingPublic)


@registry.get("/buildings", response_model=Page[BuildingPublic])
async def list_buildings(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    items, cursor = await service.list_rows(session, who, Building, page)
    return Page[BuildingPublic](items=items, next_cursor=cursor)


@registry.post(
    "/households",
    status_code=201,
    response_model=HouseholdPublic,
    responses=problem_responses(p.UnknownBuilding, p.AlreadyRegistered),
)
async def register_household(body: HouseholdCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_household(session, who, body), HouseholdPublic)


@registry.get("/households", response_model=Page[HouseholdPublic])
async def list_households(
    who: StaffOnly, session: SessionDep, page: PageDep, building_id: Annotated[Id | None, Query()] = None
) -> Any:
    items, cursor = await service.list_rows(session, who, Household, page, building_id=building_id)
    return Page[HouseholdPublic](items=items, next_cursor=cursor)


@registry.post(
    "/residents",
    status_code=201,
    response_model=ResidentPublic,
    responses=problem_responses(p.UnknownHousehold, p.AlreadyRegistered),
)
async def register_resident(body: ResidentCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_resident(session, who, body), ResidentPublic)


@registry.get("/residents", response_model=Page[ResidentPublic])
async def list_residents(
    who: StaffOnly, session: SessionDep, page: PageDep, household_id: Annotated[Id | None, Query()] = None
) -> Any:
    items, cursor = await service.list_rows(session, who, Resident, page, household_id=household_id)
    return Page[ResidentPublic](items=items, next_cursor=cursor)


@registry.get("/residents/{resident_id}", response_model=ResidentPublic, responses=problem_responses(p.RecordNotFound))
async def get_resident(resident_id: Id, who: CurrentPrincipal, session: SessionDep) -> Any:
    if resident_id != who.subject and not who.is_staff:
        raise p.RecordNotFound()
    return await service.get_resident(session, who, resident_id)


@registry.post(
    "/staff",
    status_code=201,
    response_model=StaffPublic,
    responses=problem_responses(p.UnknownBuilding, p.UnknownStaff, p.AlreadyRegistered),
)
async def register_staff(body: StaffCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_staff(session, who, body), StaffPublic)


@registry.get("/staff", response_model=Page[StaffPublic])
async def list_staff(who: StaffOnly, session: SessionDep, page: PageDep) -> Any:
    items, cursor = await service.list_rows(session, who, Staff, page)
    return Page[StaffPublic](items=items, next_cursor=cursor)


@registry.put("/staff/{staff_id}/roster", response_model=RosterPublic, responses=problem_responses(p.UnknownStaff))
async def set_roster(staff_id: Id, body: RosterIn, who: Admin, session: SessionDep) -> Any:
    """Replace a steward's weekly duty roster (值班表), in the community's local time."""
    shifts = await service.set_roster(session, who, staff_id, body)
    return RosterPublic(staff_id=staff_id, shifts=shifts)


@registry.get("/staff/{staff_id}/roster", response_model=RosterPublic, responses=problem_responses(p.UnknownStaff))
async def get_roster(staff_id: Id, who: StaffOnly, session: SessionDep) -> Any:
    return RosterPublic(staff_id=staff_id, shifts=await service.get_roster(session, who, staff_id))


@registry.get("/staff/{staff_id}/figures", response_model=StewardFigures, responses=problem_responses(p.UnknownStaff))
async def steward_figures(
    staff_id: Id,
    who: StaffOnly,
    session: SessionDep,
    month: Annotated[Month, Query(description="YYYY-MM, local time")],
) -> Any:
    """Monthly figures per steward: tickets, on-time completions, average rating."""
    if who.has("steward") and not who.has("property_admin", "community_worker") and staff_id != who.subject:
        raise Forbidden(("管家只能查看自己的统计", "A steward may see only their own figures"))
    return await service.steward_figures(session, who, staff_id, month)


# --- catalogue and SLA settings -------------------------------------------------------------------


@admin.post(
    "/catalogue",
    status_code=201,
    response_model=CatalogueItemPublic,
    responses=problem_responses(p.AlreadyRegistered),
)
async def add_catalogue_item(body: CatalogueItemCreate, who: Admin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.add_catalogue_item(session, who, body), CatalogueItemPublic)


@admin.get("/catalogue", response_model=Page[CatalogueItemPublic])
async def list_catalogue(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    items, cursor = await service.list_rows(session, who, CatalogueItem, page)
    return Page[CatalogueItemPublic](items=items, next_cursor=cursor)


@admin.put("/sla-policies/{category}/{priority}", response_model=SlaPolicyPublic)
async def set_sla_policy(category: Category, priority: Priority, body: SlaPolicyIn, who: Admin, session: SessionDep) -> Any:
    return await service.set_sla_policy(session, who, category, priority, body)


@admin.get("/sla-policies", response_model=list[SlaPolicyPublic])
async def list_sla_policies(who: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.list_sla_policies(session, who)


# --- photos ------------------------------------------------------------------------------------------


@tickets.post(
    "/photos",
    status_code=201,
    response_model=PhotoPublic,
    responses=problem_responses(p.PhotoTooLarge, p.PhotoNotImage),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in ("image/jpeg", "image/png", "image/webp")},
        }
    },
)
async def upload_photo(request: Request, who: ResidentOnly, session: SessionDep) -> Any:
    """Upload one photo (the raw bytes; at most 2 MB; JPEG, PNG or WebP by content) to attach to a ticket."""
    settings = settings_of(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.photo_max_bytes:
        raise p.PhotoTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > settings.photo_max_bytes:
            raise p.PhotoTooLarge()
        chunks.append(chunk)
    return await service.store_photo(session, who, b"".join(chunks), settings)


@tickets.get("/photos/{photo_id}", response_class=FileResponse, responses=problem_responses(p.RecordNotFound))
async def get_photo(photo_id: Id, request: Request, who: CurrentPrincipal, session: SessionDep) -> Any:
    photo = await service.get_photo(session, who, photo_id)
    return FileResponse(service.photo_path(settings_of(request), photo), media_type=photo.media_type)


# --- tickets (工单) ---------------------------------------------------------------------------------------


@tickets.post(
    "/tickets",
    status_code=201,
    response_model=TicketPublic,
    responses=problem_responses(p.ResidentNotRegistered, p.UnknownService, p.PhotoUnavailable, p.DailyLimitReached),
)
async def submit_ticket(
    body: TicketCreate, request: Request, who: ResidentOnly, session: SessionDep, idem: IdempotencyDep
) -> Any:
    """File a ticket, routed on the server to the building's steward on duty, the backup, or the queue."""
    settings = settings_of(request)
    return await idem.run(session, body, lambda: service.submit_ticket(session, who, body, settings), TicketPublic)


@tickets.get("/tickets", response_model=Page[TicketPublic], responses=problem_responses(p.ResidentNotRegistered))
async def list_tickets(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    status: Status | None = None,
    breached: bool | None = None,
) -> Any:
    """A resident's household's tickets, or (staff) the community's; newest first."""
    items, cursor = await service.list_tickets(session, who, page, status, breached)
    return Page[TicketPublic](items=items, next_cursor=cursor)


@tickets.get("/queue", response_model=Page[TicketPublic])
async def steward_queue(
    who: Steward, session: SessionDep, page: PageDep, scope: Literal["mine", "community", "all"] = "mine"
) -> Any:
    """A steward's open tickets (or the community queue) sorted by the deadline each one races."""
    if scope == "all" and not who.has("property_admin"):
        raise Forbidden(("只有物业经理可以查看全部工单", "Only a property admin may see every open ticket"))
    items, cursor = await service.steward_queue(session, who, page, scope)
    return Page[TicketPublic](items=items, next_cursor=cursor)


@tickets.get("/tickets/{ticket_id}", response_model=TicketPublic, responses=problem_responses(p.TicketNotFound))
async def get_ticket(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.get_ticket(session, who, ticket_id)


@tickets.get(
    "/tickets/{ticket_id}/steps",
    response_model=list[StepPublic],
    responses=problem_responses(p.TicketNotFound),
)
async def ticket_steps(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep) -> Any:
    """The audit trail: every step with who, role, action, from and to status, and when."""
    return await service.ticket_steps(session, who, ticket_id)


ACTION_PROBLEMS = problem_responses(p.TicketNotFound, p.TransitionNotAllowed, p.NotAssignee)


def _action_route(action: Action, body_model: Any, summary: str, *extra: Any) -> None:
    path = f"/tickets/{{ticket_id}}/{action.value.replace('_', '-')}"
    responses = {**ACTION_PROBLEMS, **problem_responses(*extra)}

    if body_model is None:

        async def without_body(ticket_id: TicketId, request: Request, who: CurrentPrincipal, session: SessionDep) -> Any:
            return await service.act(session, who, ticket_id, action, None, settings_of(request))

        handler: Any = without_body
    else:

        async def with_body(
            ticket_id: TicketId,
            body: Any,
            request: Request,
            who: CurrentPrincipal,
            session: SessionDep,
        ) -> Any:
            return await service.act(session, who, ticket_id, action, body, settings_of(request))

        # The module uses postponed annotations; give FastAPI the real body model of this action.
        with_body.__annotations__["body"] = body_model
        handler = with_body
    handler.__name__ = action.value
    tickets.add_api_route(
        path,
        handler,
        methods=["POST"],
        response_model=TicketPublic,
        summary=summary,
        responses=responses,
        name=action.value,
    )


_ACTIONS: list[tuple[Any, ...]] = [
    (Action.cancel, Reason, "Resident or admin: cancel the ticket"),
    (Action.approve_quote, None, "Resident: approve the quote"),
    (Action.reject_quote, Reason, "Resident: reject the quote"),
    (Action.confirm, None, "Resident: confirm the completed work"),
    (Action.return_work, Reason, "Resident: return the completed work for rework"),
    (Action.rate, RateIn, "Resident: rate the work (overall, speed, comment)", p.AlreadyRated),
    (Action.hurry, None, "Resident: hurry a late ticket (催单)", p.HurryTooSoon),
    (Action.accept, None, "Steward: accept the ticket (a queue ticket goes to the first steward)"),
    (Action.start, None, "Steward: start work (paid work needs an approved quote)", p.QuoteNotApproved),
    (Action.pause, PauseIn, "Steward: pause, waiting on the resident or parts (the SLA clock stops)"),
    (Action.resume, None, "Steward: resume paused work"),
    (Action.quote, QuoteIn, "Steward: quote a value-added service (never a basic one)", p.BasicServiceIsFree),
    (Action.complete, None, "Steward: complete the work"),
    (Action.follow_up, FollowUpIn, "Steward: record the follow-up visit (回访)"),
    (Action.hand_over, HandOverIn, "Steward: hand the ticket to a colleague, with a reason", p.UnknownStaff),
    (Action.reassign, HandOverIn, "Admin: reassign the ticket to a steward", p.UnknownStaff),
    (Action.close, Reason, "Admin: close the ticket"),
]
for _action, _body, _summary, *_extra in _ACTIONS:
    _action_route(_action, _body, _summary, *_extra)


@tickets.post(
    "/tickets/{ticket_id}/payments",
    status_code=201,
    response_model=PaymentPublic,
    responses=problem_responses(p.TicketNotFound, p.BasicServiceIsFree, p.NothingToPay, p.PaymentDeclined),
)
async def pay(
    ticket_id: TicketId,
    body: PaymentIn,
    request: Request,
    who: ResidentOnly,
    session: SessionDep,
    idem: IdempotencyDep,
) -> Any:
    """Pay an approved value-added ticket by money (the provider port) or points (through governance)."""
    settings, provider = settings_of(request), request.app.state.payment_provider
    return await idem.run(
        session,
        body,
        lambda: service.pay(session, who, ticket_id, body.method, settings, provider),
        PaymentPublic,
    )


@tickets.get(
    "/tickets/{ticket_id}/payments",
    response_model=list[PaymentPublic],
    responses=problem_responses(p.TicketNotFound),
)
async def list_payments(ticket_id: TicketId, who: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.list_payments(session, who, ticket_id)


routers = [registry, admin, tickets]
