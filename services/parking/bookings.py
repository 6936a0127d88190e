"""Search and bookings (预约): find a free spot, hold it, pay, cancel with a refund. A booking lies inside
one open occurrence (locked while booking) and never overlaps another booking that holds the spot: the
exclusion constraint on `bookings` decides every race."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import driver_statement, fetch_all_alone, transaction
from services.kit.pagination import PageParams, make_page
from services.kit.payments import PaymentProvider
from services.parking import domain, problems
from services.parking.domain import BookingStatus, CancelledBy, SpotSize
from services.parking.events import BookingConfirmed, publisher
from services.parking.models import (
    B_BLOCKING,
    BOOKINGS,
    OCCURRENCES,
    OPEN,
    SPOTS,
    Booking,
    Payment,
    Spot,
    WindowOccurrence,
    changed_rows,
)
from services.parking.policy import policy_for
from services.parking.schemas import BookingCreate, BookingPay, BookingsOf, FreeSpot

# --- search -------------------------------------------------------------------------------------

# A spot is free for [start, end) when an open occurrence contains the range and no booking that holds
# the spot overlaps it plus the occurrence's buffer; a hold past its expiry no longer counts, even
# before the job marks it expired. `{filters}` takes the optional size, charging and cursor conditions.
SEARCH_SQL = f"""
SELECT s.id AS spot_id, s.code, s.location, s.kind, s.size, s.has_charger,
       o.id AS occurrence_id, o.price_fen_per_30min
FROM window_occurrences o
JOIN spots s ON s.id = o.spot_id
WHERE o.community = :community AND o.status = '{OPEN}'
  AND o.period @> tstzrange(CAST(:start AS timestamptz), CAST(:end AS timestamptz), '[)')
  AND s.status = 'verified' {{filters}}
  AND NOT EXISTS (
      SELECT 1 FROM bookings b
      WHERE b.spot_id = o.spot_id AND {B_BLOCKING}
        AND b.blocked && tstzrange(CAST(:start AS timestamptz),
                                   CAST(:end AS timestamptz) + make_interval(mins => o.buffer_minutes), '[)')
        AND NOT (b.status = '{BookingStatus.held}' AND b.hold_expires_at <= now()))
ORDER BY s.id
LIMIT :limit
"""


# The search for each combination of the optional filters, compiled once to the driver's SQL: it is
# one statement, so it is sent alone (no BEGIN, no COMMIT) straight to a pooled connection.
_FILTERS = {"size": "AND s.size = :size", "charging": "AND s.has_charger = :charging", "after": "AND s.id > :after"}
SEARCHES = {
    used: driver_statement(text(SEARCH_SQL.format(filters=" ".join(_FILTERS[f] for f in used))))
    for n in range(len(_FILTERS) + 1)
    for used in combinations(_FILTERS, n)
}


def _free_spot_cursor(spot: FreeSpot) -> list[str]:
    return [str(spot.spot_id)]


async def search_free(
    session: AsyncSession,
    principal: Principal,
    start: datetime,
    end: datetime,
    size: SpotSize | None,
    charging: bool | None,
    page: PageParams,
) -> tuple[list[FreeSpot], str | None]:
    """Verified spots free for [start, end) with their price and the fee for the range, by spot id."""
    if end <= start:
        raise problems.InvalidTimeRange(("结束时间必须晚于开始时间", "The end must be after the start"))
    params: dict[str, Any] = {
        "community": principal.community,
        "start": start,
        "end": end,
        "limit": page.limit + 1,
    }
    if size:
        params["size"] = size
    if charging is not None:
        params["charging"] = charging
    after = page.after()
    if after:
        params["after"] = uuid.UUID(str(after[0]))
    search = SEARCHES[tuple(f for f in _FILTERS if f in params)]
    rows = await fetch_all_alone(session, search.sql, *search.args(**params))
    spots = [FreeSpot(**vars(r), fee_fen=domain.fee_fen(start, end, r.price_fen_per_30min)) for r in rows]
    return make_page(spots, page.limit, _free_spot_cursor)


# --- bookings -----------------------------------------------------------------------------------


async def expire_stale_holds(session: AsyncSession, now: datetime, spot_id: uuid.UUID | None = None) -> int:
    """Mark holds past their expiry expired (of one spot, or all), in the caller's transaction."""
    stmt = update(BOOKINGS).where(BOOKINGS.c.status == BookingStatus.held.value, BOOKINGS.c.hold_expires_at <= now)
    if spot_id is not None:
        stmt = stmt.where(BOOKINGS.c.spot_id == spot_id)
    result = await session.execute(stmt.values(status=BookingStatus.expired.value, updated_at=now))
    return changed_rows(result)


async def create_booking(session: AsyncSession, principal: Principal, body: BookingCreate) -> Booking:
    """Hold a spot for [starts_at, ends_at): inside one open occurrence (locked), never overlapping
    another holding booking (the exclusion constraint decides races)."""
    now = datetime.now(UTC)
    policy = await policy_for(session, principal.community)
    try:
        domain.check_booking_range(body.starts_at, body.ends_at, now=now, min_minutes=policy.min_booking_minutes)
    except domain.RangeProblem as err:
        raise problems.range_problem(err, "预约") from None
    async with transaction(session):
        spot: Spot | None = (
            await session.execute(select(Spot).where(SPOTS.c.id == body.spot_id, SPOTS.c.community == principal.community))
        ).scalar_one_or_none()
        if spot is None or spot.status != "verified":
            raise problems.SpotNotFound()
        occurrence: WindowOccurrence | None = (
            await session.execute(
                select(WindowOccurrence)
                .where(
                    OCCURRENCES.c.spot_id == body.spot_id,
                    OCCURRENCES.c.status == OPEN,
                    OCCURRENCES.c.starts_at <= body.starts_at,
                    OCCURRENCES.c.ends_at >= body.ends_at,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if occurrence is None:
            raise problems.OutsideWindow()
        await expire_stale_holds(session, now, body.spot_id)
        booking = Booking(
            id=uuid.uuid4(),
            community=principal.community,
            spot_id=body.spot_id,
            occurrence_id=occurrence.id,
            kind="booking",
            booker_id=principal.subject,
            owner_id=spot.owner_id,
            plate=body.plate,
            visitor=body.visitor,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            block_ends_at=domain.blocked_until(body.ends_at, occurrence.buffer_minutes),
            status=BookingStatus.held.value,
            hold_expires_at=now + timedelta(minutes=policy.hold_minutes),
            price_fen_per_30min=occurrence.price_fen_per_30min,
            fee_fen=domain.fee_fen(body.starts_at, body.ends_at, occurrence.price_fen_per_30min),
            created_at=now,
            updated_at=now,
        )
        session.add(booking)
        try:
            await session.flush()
        except IntegrityError as exc:
            if "ex_bookings_spot_blocked" in problems.violated_constraint(exc):
                raise problems.BookingConflict() from None
            raise
    return booking


async def _booking_for(session: AsyncSession, principal: Principal, booking_id: uuid.UUID, *, lock: bool = False) -> Booking:
    """The booking if the caller booked it, owns its spot or is staff; others get 404."""
    query = select(Booking).where(BOOKINGS.c.id == booking_id, BOOKINGS.c.community == principal.community)
    booking: Booking | None = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if booking is None or not (principal.is_staff or principal.subject in (booking.booker_id, booking.owner_id)):
        raise problems.BookingNotFound()
    return booking


async def get_booking(session: AsyncSession, principal: Principal, booking_id: uuid.UUID) -> Booking:
    async with transaction(session):
        return await _booking_for(session, principal, booking_id)


async def pay_booking(
    session: AsyncSession,
    principal: Principal,
    booking_id: uuid.UUID,
    body: BookingPay,
    payments: PaymentProvider,
) -> Booking:
    """The booker pays an unexpired hold through the payment port; the booking is then confirmed."""
    now = datetime.now(UTC)
    async with transaction(session):
        booking = await _booking_for(session, principal, booking_id, lock=True)
        if booking.booker_id != principal.subject:
            raise problems.BookingNotFound()
        if booking.status != BookingStatus.held.value:
            raise problems.InvalidBookingState()
        if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
            raise problems.HoldExpired()
        if booking.fee_fen > 0:
            result = await payments.charge(reference=str(booking.id), amount_fen=booking.fee_fen, method=body.method)
            if not result.approved:
                raise problems.PaymentDeclined()
            session.add(
                Payment(
                    id=uuid.uuid4(),
                    community=booking.community,
                    booking_id=booking.id,
                    kind="charge",
                    amount_fen=booking.fee_fen,
                    provider=payments.name,
                    provider_ref=result.provider_ref,
                    created_at=now,
                )
            )
        booking.status = BookingStatus.confirmed.value
        booking.paid_fen = booking.fee_fen
        booking.hold_expires_at = None
        booking.updated_at = now
        await publisher.publish(
            session,
            BookingConfirmed(
                booking_id=str(booking.id),
                community=booking.community,
                spot_id=str(booking.spot_id),
                owner_id=booking.owner_id,
                booker_id=booking.booker_id,
                start=booking.starts_at,
                end=booking.ends_at,
                fee_fen=booking.fee_fen,
                confirmed_at=now,
            ),
            key=str(booking.id),
            occurred_at=now,
        )
    return booking


def _cancelled_by(principal: Principal, booking: Booking) -> CancelledBy:
    if principal.subject == booking.owner_id:
        return "owner"
    if principal.is_staff and principal.subject != booking.booker_id:
        return "staff"
    return "booker"


async def cancel_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID, payments: PaymentProvider
) -> Booking:
    """Cancel a held or confirmed booking and refund by the community's policy (`domain.refund_fen`);
    the booker cannot cancel once the booking has started, the owner and staff can."""
    now = datetime.now(UTC)
    policy = await policy_for(session, principal.community)
    async with transaction(session):
        booking = await _booking_for(session, principal, booking_id, lock=True)
        if booking.status not in (BookingStatus.held.value, BookingStatus.confirmed.value):
            raise problems.InvalidBookingState()
        by_owner_or_staff = principal.subject == booking.owner_id or principal.is_staff
        if not by_owner_or_staff and now >= booking.starts_at:
            raise problems.InvalidBookingState(("预约已开始，不能取消", "The booking has started"))
        refund = domain.refund_fen(
            booking.paid_fen,
            now=now,
            starts_at=booking.starts_at,
            by_owner_or_staff=by_owner_or_staff,
            full_refund_before=timedelta(minutes=policy.full_refund_before_minutes),
            late_refund_pct=policy.late_cancel_refund_pct,
        )
        if refund > 0:
            result = await payments.refund(reference=str(booking.id), amount_fen=refund)
            session.add(
                Payment(
                    id=uuid.uuid4(),
                    community=booking.community,
                    booking_id=booking.id,
                    kind="refund",
                    amount_fen=refund,
                    provider=payments.name,
                    provider_ref=result.provider_ref,
                    created_at=now,
                )
            )
        booking.refunded_fen = refund
        booking.status = BookingStatus.cancelled.value
        booking.cancelled_by = _cancelled_by(principal, booking)
        booking.hold_expires_at = None
        booking.updated_at = now
    return booking


def _booking_cursor(booking: Booking) -> list[str]:
    return [booking.starts_at.isoformat(), str(booking.id)]


async def list_bookings(
    session: AsyncSession, principal: Principal, role: BookingsOf, status: BookingStatus | None, page: PageParams
) -> tuple[list[Booking], str | None]:
    """The caller's bookings as booker (default) or as spot owner; staff may ask for all of them."""
    query = select(Booking).where(BOOKINGS.c.community == principal.community)
    if role == "owner":
        query = query.where(BOOKINGS.c.owner_id == principal.subject)
    elif role == "all" and principal.is_staff:
        pass
    else:
        query = query.where(BOOKINGS.c.booker_id == principal.subject)
    if status:
        query = query.where(BOOKINGS.c.status == status.value)
    after = page.after()
    if after:
        start, bid = datetime.fromisoformat(str(after[0])), uuid.UUID(str(after[1]))
        query = query.where(or_(BOOKINGS.c.starts_at > start, and_(BOOKINGS.c.starts_at == start, BOOKINGS.c.id > bid)))
    async with transaction(session):
        query = query.order_by(BOOKINGS.c.starts_at, BOOKINGS.c.id).limit(page.limit + 1)
        rows = list((await session.execute(query)).scalars())
    return make_page(rows, page.limit, _booking_cursor)


async def expire_holds(session: AsyncSession, now: datetime | None = None) -> int:
    """Holds not paid in time free their spot (the scheduled job)."""
    async with transaction(session):
        return await expire_stale_holds(session, now or datetime.now(UTC))
