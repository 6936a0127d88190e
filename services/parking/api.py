"""Parking's HTTP routes: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Day, Timestamp
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.parking import problems as p
from services.parking import service
from services.parking.payments import PaymentProvider
from services.parking.schemas import (
    BookingCreate,
    BookingPay,
    BookingPublic,
    CommunitySettingsBody,
    CommunitySettingsPublic,
    Earnings,
    FreeSpot,
    GateDecision,
    GateDeviceCreate,
    GateDevicePublic,
    GateEventPublic,
    GatePass,
    Occupancy,
    OccurrencePublic,
    PlateCorrection,
    SpotCreate,
    SpotPublic,
    SpotVerify,
    WindowCreate,
    WindowPublic,
    WindowShrink,
)
from services.parking.settings import Settings

router = APIRouter()

Staff = Annotated[Principal, require_roles("steward", "property_admin", "community_worker")]
SpotAdmin = Annotated[Principal, require_roles("steward", "property_admin")]
PropertyAdmin = Annotated[Principal, require_roles("property_admin")]
GateDevice = Annotated[Principal, require_roles("gate_device")]


def payments(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payments
    return provider


def horizon(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return settings.weekly_horizon_days


# --- settings -----------------------------------------------------------------------------------


@router.get("/settings", tags=["settings"], response_model=CommunitySettingsPublic)
async def get_settings(principal: CurrentPrincipal, session: SessionDep) -> CommunitySettingsPublic:
    return (await service.policy_for(session, principal.community)).public()


@router.put(
    "/settings",
    tags=["settings"],
    response_model=CommunitySettingsPublic,
    responses=problem_responses(p.InvalidSettings, Forbidden),
)
async def put_settings(body: CommunitySettingsBody, principal: PropertyAdmin, session: SessionDep) -> CommunitySettingsPublic:
    return (await service.put_settings(session, principal, body)).public()


# --- spots --------------------------------------------------------------------------------------


@router.post(
    "/spots",
    tags=["spots"],
    status_code=201,
    response_model=SpotPublic,
    responses=problem_responses(p.DuplicateSpot, Forbidden),
)
async def register_spot(body: SpotCreate, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_spot(session, principal, body), SpotPublic)


@router.get("/spots", tags=["spots"], response_model=Page[SpotPublic])
async def list_spots(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    status: Literal["pending", "verified", "rejected"] | None = None,
) -> Page[SpotPublic]:
    rows, cursor = await service.list_spots(session, principal, page, status)
    return Page(items=[SpotPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/spots/{spot_id}", tags=["spots"], response_model=SpotPublic, responses=problem_responses(p.SpotNotFound))
async def get_spot(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.get_spot(session, principal, spot_id)


@router.post(
    "/spots/{spot_id}/verification",
    tags=["spots"],
    response_model=SpotPublic,
    responses=problem_responses(p.SpotNotFound, Forbidden),
)
async def verify_spot(spot_id: uuid.UUID, body: SpotVerify, principal: SpotAdmin, session: SessionDep) -> Any:
    return await service.verify_spot(session, principal, spot_id, body.approve)


# --- windows ------------------------------------------------------------------------------------


@router.post(
    "/spots/{spot_id}/windows",
    tags=["windows"],
    status_code=201,
    response_model=WindowPublic,
    responses=problem_responses(
        p.SpotNotFound, p.NotSpotOwner, p.SpotNotVerified, p.WindowOverlaps, p.InvalidTimeRange, p.TooShort
    ),
)
async def publish_window(
    spot_id: uuid.UUID,
    body: WindowCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    idem: IdempotencyDep,
    request: Request,
) -> Any:
    fingerprint = {"spot_id": str(spot_id), **body.model_dump(mode="json")}
    return await idem.run(
        session,
        fingerprint,
        lambda: service.publish_window(session, principal, spot_id, body, horizon(request)),
        WindowPublic,
    )


@router.get(
    "/spots/{spot_id}/windows",
    tags=["windows"],
    response_model=list[WindowPublic],
    responses=problem_responses(p.SpotNotFound),
)
async def list_windows(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.list_windows(session, principal, spot_id)


@router.get(
    "/windows/{window_id}/occurrences",
    tags=["windows"],
    response_model=Page[OccurrencePublic],
    responses=problem_responses(p.WindowNotFound),
)
async def list_occurrences(
    window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, page: PageDep
) -> Page[OccurrencePublic]:
    rows, cursor = await service.list_occurrences(session, principal, window_id, page)
    return Page(items=[OccurrencePublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.patch(
    "/windows/{window_id}",
    tags=["windows"],
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse, p.InvalidTimeRange, p.TooShort),
)
async def shrink_window(window_id: uuid.UUID, body: WindowShrink, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.shrink_window(session, principal, window_id, body)


@router.post(
    "/windows/{window_id}/withdrawal",
    tags=["windows"],
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse),
)
async def withdraw_window(window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.withdraw_window(session, principal, window_id)


# --- search and bookings ------------------------------------------------------------------------


@router.get(
    "/free-spots",
    tags=["bookings"],
    response_model=Page[FreeSpot],
    responses=problem_responses(p.InvalidTimeRange),
)
async def search_free_spots(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    starts_at: Annotated[Timestamp, Query()],
    ends_at: Annotated[Timestamp, Query()],
    size: Literal["compact", "standard", "large"] | None = None,
    charging: bool | None = None,
) -> Page[FreeSpot]:
    rows, cursor = await service.search_free(session, principal, starts_at, ends_at, size, charging, page)
    return Page(items=rows, next_cursor=cursor)


@router.post(
    "/bookings",
    tags=["bookings"],
    status_code=201,
    response_model=BookingPublic,
    responses=problem_responses(
        p.BookingConflict, p.OutsideWindow, p.SpotNotFound, p.BookingInPast, p.InvalidTimeRange, p.TooShort
    ),
)
async def create_booking(body: BookingCreate, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.create_booking(session, principal, body), BookingPublic)


@router.get("/bookings", tags=["bookings"], response_model=Page[BookingPublic])
async def list_bookings(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    role: Literal["booker", "owner", "all"] = "booker",
    status: Literal["held", "confirmed", "active", "completed", "cancelled", "expired"] | None = None,
) -> Page[BookingPublic]:
    rows, cursor = await service.list_bookings(session, principal, role, status, page)
    return Page(items=[BookingPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/bookings/{booking_id}",
    tags=["bookings"],
    response_model=BookingPublic,
    responses=problem_responses(p.BookingNotFound),
)
async def get_booking(booking_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.get_booking(session, principal, booking_id)


@router.post(
    "/bookings/{booking_id}/payment",
    tags=["bookings"],
    response_model=BookingPublic,
    responses=problem_responses(p.BookingNotFound, p.HoldExpired, p.InvalidBookingState, p.PaymentDeclined),
)
async def pay_booking(
    booking_id: uuid.UUID,
    body: BookingPay,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Any:
    return await service.pay_booking(session, principal, booking_id, body, payments(request))


@router.post(
    "/bookings/{booking_id}/cancellation",
    tags=["bookings"],
    response_model=BookingPublic,
    responses=problem_responses(p.BookingNotFound, p.InvalidBookingState),
)
async def cancel_booking(booking_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, request: Request) -> Any:
    return await service.cancel_booking(session, principal, booking_id, payments(request))


# --- gate ---------------------------------------------------------------------------------------


@router.post(
    "/gate-devices",
    tags=["gate"],
    status_code=201,
    response_model=GateDevicePublic,
    responses=problem_responses(p.DuplicateGateDevice, Forbidden),
)
async def register_gate_device(body: GateDeviceCreate, principal: SpotAdmin, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.register_device(session, principal, body), GateDevicePublic)


@router.get("/gate-devices", tags=["gate"], response_model=list[GateDevicePublic])
async def list_gate_devices(principal: Staff, session: SessionDep) -> Any:
    return await service.list_devices(session, principal)


@router.post(
    "/gate/entries",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_entry(body: GatePass, principal: GateDevice, session: SessionDep, request: Request) -> GateDecision:
    """A plate read at the entry barrier: `decision` says whether the barrier opens."""
    return await service.gate_pass(session, principal, "entry", body.plate, body.at, payments(request))


@router.post(
    "/gate/exits",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_exit(body: GatePass, principal: GateDevice, session: SessionDep, request: Request) -> GateDecision:
    """A plate read at the exit barrier: completes the booking and charges overstay or the public rate."""
    return await service.gate_pass(session, principal, "exit", body.plate, body.at, payments(request))


@router.get("/gate-events", tags=["gate"], response_model=Page[GateEventPublic])
async def list_gate_events(
    principal: Staff, session: SessionDep, page: PageDep, decision: Literal["open", "refused"] | None = None
) -> Page[GateEventPublic]:
    rows, cursor = await service.list_gate_events(session, principal, decision, page)
    return Page(items=[GateEventPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/gate-events/{event_id}/correction",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.GateEventNotFound, p.InvalidBookingState),
)
async def correct_plate(
    event_id: uuid.UUID, body: PlateCorrection, principal: SpotAdmin, session: SessionDep, request: Request
) -> GateDecision:
    """A steward fixes a misread plate; the event is matched to bookings again."""
    return await service.correct_plate(session, principal, event_id, body.plate, payments(request))


# --- reports ------------------------------------------------------------------------------------


@router.get("/earnings", tags=["reports"], response_model=Earnings)
async def get_earnings(principal: CurrentPrincipal, session: SessionDep) -> Earnings:
    """The caller's earnings as a spot owner, by local month."""
    return await service.earnings(session, principal)


@router.get("/occupancy", tags=["reports"], response_model=Occupancy)
async def get_occupancy(
    principal: Staff,
    session: SessionDep,
    day: Annotated[Day | None, Query(description="Local date (default today)")] = None,
) -> Occupancy:
    return await service.occupancy(session, principal, day)
