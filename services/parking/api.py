"""Parking's HTTP routes: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.parking import bookings, gate, policy, reports, spots, windows
from services.parking import problems as p
from services.parking.domain import SPOT_ADMINS, BarrierDecision, BookingStatus, SpotSize, SpotStatus
from services.parking.payments import PaymentProvider
from services.parking.schemas import (
    BookingCreate,
    BookingPay,
    BookingPublic,
    BookingsOf,
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
SpotAdmin = Annotated[Principal, require_roles(*SPOT_ADMINS)]
PropertyAdmin = Annotated[Principal, require_roles("property_admin")]
GateDevice = Annotated[Principal, require_roles("gate_device")]


def payment_provider(request: Request) -> PaymentProvider:
    provider: PaymentProvider = request.app.state.payments
    return provider


def weekly_horizon_days(request: Request) -> int:
    settings: Settings = request.app.state.settings
    return settings.weekly_horizon_days


Payments = Annotated[PaymentProvider, Depends(payment_provider)]
Horizon = Annotated[int, Depends(weekly_horizon_days)]


# --- settings -----------------------------------------------------------------------------------


@router.get("/settings", tags=["settings"], response_model=CommunitySettingsPublic)
async def get_settings(principal: CurrentPrincipal, session: SessionDep) -> CommunitySettingsPublic:
    """The community's parking policy.

    Shares, public rate, hold minutes, minimum durations, refund policy, entry grace and walk-in block of the caller's
    community, with the defaults where its property_admin has set none. Anyone in the community may read it.
    """
    return (await policy.policy_for(session, principal.community)).public()


@router.put(
    "/settings",
    tags=["settings"],
    response_model=CommunitySettingsPublic,
    responses=problem_responses(p.InvalidSettings, Forbidden),
)
async def put_settings(body: CommunitySettingsBody, principal: PropertyAdmin, session: SessionDep) -> CommunitySettingsPublic:
    """Replace the community's parking policy.

    Every field is replaced; the owner's and property's shares together may not exceed 100% (the platform takes the rest). Only
    a property_admin may call it.
    """
    return (await policy.put_settings(session, principal, body)).public()


# --- spots --------------------------------------------------------------------------------------


@router.post(
    "/spots", tags=["spots"], status_code=201, response_model=SpotPublic, responses=problem_responses(p.DuplicateSpot, Forbidden)
)
async def register_spot(body: SpotCreate, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a spot.

    A resident registers their own private spot, which stays `pending` until staff verify it; a steward or property_admin
    registers a public spot, verified at once. Codes are unique in a community. Safe to retry with an `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: spots.register_spot(session, principal, body), SpotPublic)


@router.get("/spots", tags=["spots"], response_model=Page[SpotPublic])
async def list_spots(
    principal: CurrentPrincipal, session: SessionDep, page: PageDep, status: SpotStatus | None = None
) -> Page[SpotPublic]:
    """List spots by code.

    Staff see every spot of the community; anyone else sees the spots they own. Filter by verification status; page with the
    returned cursor.
    """
    rows, cursor = await spots.list_spots(session, principal, page, status)
    return Page(items=[SpotPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/spots/{spot_id}", tags=["spots"], response_model=SpotPublic, responses=problem_responses(p.SpotNotFound))
async def get_spot(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """One spot.

    Its owner and staff may read it; to anyone else it does not exist (404).
    """
    return await spots.get_spot(session, principal, spot_id)


@router.post(
    "/spots/{spot_id}/verification",
    tags=["spots"],
    response_model=SpotPublic,
    responses=problem_responses(p.SpotNotFound, Forbidden),
)
async def verify_spot(spot_id: uuid.UUID, body: SpotVerify, principal: SpotAdmin, session: SessionDep) -> Any:
    """Approve or reject a registered spot.

    Only a verified spot can publish windows. A steward or property_admin may call it.
    """
    return await spots.verify_spot(session, principal, spot_id, body.approve)


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
    horizon: Horizon,
) -> Any:
    """Publish an availability window of a spot.

    A one-off window has `starts_at`/`ends_at`; a weekly one has ISO weekdays and local start and end times (Asia/Shanghai; an
    end at or before the start is the next day) and is expanded into occurrences up to the horizon. Windows of one spot never
    overlap. The owner of a private spot, or a steward or property_admin for a public one, may call it; the spot must be
    verified. Safe to retry with an `Idempotency-Key`.
    """
    fingerprint = {"spot_id": str(spot_id), **body.model_dump(mode="json")}
    return await idem.run(
        session, fingerprint, lambda: windows.publish_window(session, principal, spot_id, body, horizon), WindowPublic
    )


@router.get(
    "/spots/{spot_id}/windows", tags=["windows"], response_model=list[WindowPublic], responses=problem_responses(p.SpotNotFound)
)
async def list_windows(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """List a spot's windows, oldest first.

    The spot's owner and staff may call it; to anyone else the spot does not exist (404).
    """
    return await windows.list_windows(session, principal, spot_id)


@router.get(
    "/windows/{window_id}/occurrences",
    tags=["windows"],
    response_model=Page[OccurrencePublic],
    responses=problem_responses(p.WindowNotFound),
)
async def list_occurrences(
    window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, page: PageDep
) -> Page[OccurrencePublic]:
    """List a window's occurrences by start.

    The concrete stretches of time a window offers (one for a one-off window, one per day for a weekly one). The spot's owner
    and spot administrators may call it; others get 404.
    """
    rows, cursor = await windows.list_occurrences(session, principal, window_id, page)
    return Page(items=[OccurrencePublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.patch(
    "/windows/{window_id}",
    tags=["windows"],
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse, p.InvalidTimeRange, p.TooShort),
)
async def shrink_window(window_id: uuid.UUID, body: WindowShrink, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Shrink an open one-off window.

    The new range must lie inside the old one and still hold every booking (with its buffer) in the window. The spot's owner and
    spot administrators may call it; others get 404.
    """
    return await windows.shrink_window(session, principal, window_id, body)


@router.post(
    "/windows/{window_id}/withdrawal",
    tags=["windows"],
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse),
)
async def withdraw_window(window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Withdraw the rest of a window.

    Occurrences not yet over stop being offered; refused while a booking still holds a part of them. The spot's owner and spot
    administrators may call it; others get 404.
    """
    return await windows.withdraw_window(session, principal, window_id)


# --- search and bookings ------------------------------------------------------------------------


@router.get("/free-spots", tags=["bookings"], response_model=Page[FreeSpot], responses=problem_responses(p.InvalidTimeRange))
async def search_free_spots(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    starts_at: Annotated[AwareDatetime, Query()],
    ends_at: Annotated[AwareDatetime, Query()],
    size: SpotSize | None = None,
    charging: bool | None = None,
) -> Page[FreeSpot]:
    """Search free spots for a time range.

    Verified spots of the community with an open window containing `[starts_at, ends_at)` and no booking holding them then, with
    the price and the fee for the range; by spot id. Anyone in the community may call it.
    """
    rows, cursor = await bookings.search_free(session, principal, starts_at, ends_at, size, charging, page)
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
    """Hold a spot for a plate.

    The range must lie inside one open window of a verified spot and overlap no other booking that holds the spot; the hold
    lasts the community's hold minutes until paid. Set `visitor` for a visitor's car. Anyone in the community may call it; safe
    to retry with an `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: bookings.create_booking(session, principal, body), BookingPublic)


@router.get("/bookings", tags=["bookings"], response_model=Page[BookingPublic])
async def list_bookings(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    role: BookingsOf = "booker",
    status: BookingStatus | None = None,
) -> Page[BookingPublic]:
    """List bookings by start.

    `role=booker` (default) lists the caller's own bookings, `role=owner` those of the caller's spots; staff may ask for
    `role=all`. Filter by status; page with the returned cursor.
    """
    rows, cursor = await bookings.list_bookings(session, principal, role, status, page)
    return Page(items=[BookingPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/bookings/{booking_id}", tags=["bookings"], response_model=BookingPublic, responses=problem_responses(p.BookingNotFound)
)
async def get_booking(booking_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """One booking.

    Its booker, the spot's owner and staff may read it; to anyone else it does not exist (404).
    """
    return await bookings.get_booking(session, principal, booking_id)


@router.post(
    "/bookings/{booking_id}/payment",
    tags=["bookings"],
    response_model=BookingPublic,
    responses=problem_responses(p.BookingNotFound, p.HoldExpired, p.InvalidBookingState, p.PaymentDeclined),
)
async def pay_booking(
    booking_id: uuid.UUID, body: BookingPay, principal: CurrentPrincipal, session: SessionDep, payments: Payments
) -> Any:
    """Pay a held booking.

    Charges the fee through the payment port and confirms the booking; a hold past its expiry must be booked again. Only the
    booker may call it.
    """
    return await bookings.pay_booking(session, principal, booking_id, body, payments)


@router.post(
    "/bookings/{booking_id}/cancellation",
    tags=["bookings"],
    response_model=BookingPublic,
    responses=problem_responses(p.BookingNotFound, p.InvalidBookingState),
)
async def cancel_booking(booking_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, payments: Payments) -> Any:
    """Cancel a held or confirmed booking, with a refund.

    The owner or staff cancelling refunds everything; the booker cancelling early enough refunds everything, later but before
    the start the community's late percentage, and after the start the booker cannot cancel. The booker, the spot's owner and
    staff may call it.
    """
    return await bookings.cancel_booking(session, principal, booking_id, payments)


# --- gate ---------------------------------------------------------------------------------------


@router.post(
    "/gate-devices",
    tags=["gate"],
    status_code=201,
    response_model=GateDevicePublic,
    responses=problem_responses(p.DuplicateGateDevice, Forbidden),
)
async def register_gate_device(body: GateDeviceCreate, principal: SpotAdmin, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a gate camera.

    Its id is the subject of the tokens the camera calls with. A steward or property_admin may call it; safe to retry with an
    `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: gate.register_device(session, principal, body), GateDevicePublic)


@router.get("/gate-devices", tags=["gate"], response_model=list[GateDevicePublic])
async def list_gate_devices(principal: Staff, session: SessionDep) -> Any:
    """List the community's gate cameras.

    Staff may call it.
    """
    return await gate.list_devices(session, principal)


@router.post(
    "/gate/entries",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_entry(body: GatePass, principal: GateDevice, session: SessionDep, payments: Payments) -> GateDecision:
    """Report a plate read at the entry barrier.

    A confirmed booking of the plate, from the entry grace before its start to its end, becomes active; otherwise a free public
    spot takes the car at the public rate; otherwise the barrier stays shut. `decision` says whether it opens. Only a registered
    gate camera may call it.
    """
    return await gate.gate_pass(session, principal, "entry", body.plate, body.at, payments)


@router.post(
    "/gate/exits",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.UnknownGateDevice, p.InvalidTimeRange),
)
async def gate_exit(body: GatePass, principal: GateDevice, session: SessionDep, payments: Payments) -> GateDecision:
    """Report a plate read at the exit barrier.

    Completes the plate's active booking and charges overstay (or, for a walk-in, the public rate); the barrier always opens,
    and an exit that matches nothing is kept for review. Only a registered gate camera may call it.
    """
    return await gate.gate_pass(session, principal, "exit", body.plate, body.at, payments)


@router.get("/gate-events", tags=["gate"], response_model=Page[GateEventPublic])
async def list_gate_events(
    principal: Staff, session: SessionDep, page: PageDep, decision: BarrierDecision | None = None
) -> Page[GateEventPublic]:
    """List the community's gate events, newest first.

    Filter by decision to review refused entries and unmatched exits. Staff may call it.
    """
    rows, cursor = await gate.list_gate_events(session, principal, decision, page)
    return Page(items=[GateEventPublic.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/gate-events/{event_id}/correction",
    tags=["gate"],
    response_model=GateDecision,
    responses=problem_responses(p.GateEventNotFound, p.InvalidBookingState),
)
async def correct_plate(
    event_id: uuid.UUID, body: PlateCorrection, principal: SpotAdmin, session: SessionDep, payments: Payments
) -> GateDecision:
    """Correct a misread plate of a gate event.

    The event is matched again with the right plate at its original time; a walk-in let in under the wrong plate is cancelled
    uncharged first. A steward or property_admin may call it.
    """
    return await gate.correct_plate(session, principal, event_id, body.plate, payments)


# --- reports ------------------------------------------------------------------------------------


@router.get("/earnings", tags=["reports"], response_model=Earnings)
async def get_earnings(principal: CurrentPrincipal, session: SessionDep) -> Earnings:
    """The caller's earnings as a spot owner.

    Completed bookings of the caller's spots, their fees and the owner's share, by local month. Anyone may call it for
    themselves.
    """
    return await reports.earnings(session, principal)


@router.get("/occupancy", tags=["reports"], response_model=Occupancy)
async def get_occupancy(
    principal: Staff, session: SessionDep, day: Annotated[date | None, Query(description="Local date (default today)")] = None
) -> Occupancy:
    """The community's occupancy.

    Verified spots, cars parked now, bookings running now, and the spots booked in each local hour of `day`. Staff may call it.
    """
    return await reports.occupancy(session, principal, day)
