"""Parking's booking routes: search free spots, hold, list, read, pay, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Timestamp
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses
from services.parking import bookings
from services.parking import problems as p
from services.parking.api import Payments
from services.parking.domain import BookingStatus, SpotSize
from services.parking.schemas import BookingCreate, BookingPay, BookingPublic, BookingsOf, FreeSpot

booking_routes = APIRouter(tags=["bookings"])


@booking_routes.get("/free-spots", response_model=Page[FreeSpot], responses=problem_responses(p.InvalidTimeRange))
async def search_free_spots(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    starts_at: Annotated[Timestamp, Query()],
    ends_at: Annotated[Timestamp, Query()],
    size: SpotSize | None = None,
    charging: bool | None = None,
) -> Page[FreeSpot]:
    """Search free spots for a time range.

    Verified spots of the community with an open window containing `[starts_at, ends_at)` and no booking holding them then, with
    the price and the fee for the range; by spot id. Anyone in the community may call it.
    """
    rows, cursor = await bookings.search_free(session, principal, starts_at, ends_at, size, charging, page)
    return Page(items=rows, next_cursor=cursor)


@booking_routes.post(
    "/bookings",
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


@booking_routes.get("/bookings", response_model=Page[BookingPublic])
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


@booking_routes.get("/bookings/{booking_id}", response_model=BookingPublic, responses=problem_responses(p.BookingNotFound))
async def get_booking(booking_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """One booking.

    Its booker, the spot's owner and staff may read it; to anyone else it does not exist (404).
    """
    return await bookings.get_booking(session, principal, booking_id)


@booking_routes.post(
    "/bookings/{booking_id}/payment",
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


@booking_routes.post(
    "/bookings/{booking_id}/cancellation",
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
