"""The gate (道闸): cameras read plates at the barriers; an entry matches a confirmed booking or takes a
free public spot at the public rate, an exit completes the booking and charges what is due. Stewards
correct misread plates, and the event is matched again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.kit.payments import PaymentProvider
from services.parking import domain, problems, visitors
from services.parking.domain import BarrierDecision, BookingStatus, GateDirection
from services.parking.events import BookingCompleted, publisher
from services.parking.models import (
    B_BLOCKING,
    BOOKINGS,
    GATE_DEVICES,
    GATE_EVENTS,
    VISITOR_PLATES,
    Booking,
    GateDevice,
    GateEvent,
    Payment,
)
from services.parking.policy import Policy, policy_for
from services.parking.schemas import GateDecision, GateDeviceCreate

# A camera's clock may run a little ahead; a camera that was offline sends its backlog later.
GATE_CLOCK_SKEW = timedelta(minutes=5)
GATE_OFFLINE_BACKLOG = timedelta(hours=24)

# The first free public spot for a walk-in, by code; a spot another gate is taking is skipped, not waited for.
_FREE_PUBLIC_SPOT_SQL = f"""
SELECT s.id FROM spots s
WHERE s.community = :community AND s.kind = 'public' AND s.status = 'verified'
  AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.spot_id = s.id
                  AND {B_BLOCKING}
                  AND b.blocked && tstzrange(:at, :until, '[)'))
ORDER BY s.code LIMIT 1 FOR UPDATE SKIP LOCKED"""


async def register_device(session: AsyncSession, principal: Principal, body: GateDeviceCreate) -> GateDevice:
    """Register a gate camera; its id is the subject of the tokens it calls with."""
    device = GateDevice(id=body.id, community=principal.community, name=body.name, active=True, created_at=datetime.now(UTC))
    async with transaction(session):
        session.add(device)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.DuplicateGateDevice() from None
    return device


async def list_devices(session: AsyncSession, principal: Principal, page: PageParams) -> tuple[list[GateDevice], str | None]:
    """The community's gate cameras by id (unique: the device's token subject)."""
    query = select(GateDevice).where(GATE_DEVICES.c.community == principal.community)
    after = page.after_key(str)
    if after:
        query = query.where(GATE_DEVICES.c.id > after[0])
    async with transaction(session):
        rows = list((await session.execute(query.order_by(GATE_DEVICES.c.id).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, lambda device: [device.id])


async def _device(session: AsyncSession, principal: Principal) -> GateDevice:
    """The calling camera, if registered and active in its token's community."""
    query = select(GateDevice).where(
        GATE_DEVICES.c.id == principal.subject,
        GATE_DEVICES.c.community == principal.community,
        GATE_DEVICES.c.active.is_(True),
    )
    device: GateDevice | None = (await session.execute(query)).scalar_one_or_none()
    if device is None:
        raise problems.UnknownGateDevice()
    return device


def _gate_time(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if not (now - GATE_OFFLINE_BACKLOG <= at <= now + GATE_CLOCK_SKEW):
        raise problems.InvalidTimeRange(("道闸时间与服务器时间相差过大", "The gate's clock is too far from the server's"))
    return at


def may_enter(
    starts_at: ColumnElement[datetime], ends_at: ColumnElement[datetime], at: datetime, grace: timedelta
) -> ColumnElement[bool]:
    """`domain.may_enter` as SQL: the one rule for a booking's window and a visitor pass's alike."""
    return and_(starts_at - grace <= at, ends_at > at)


@dataclass
class GateOutcome:
    decision: BarrierDecision
    reason: str
    booking: Booking | None = None
    charged_fen: int = 0
    overstay_fen: int = 0
    visitor_pass_id: str | None = None


async def _walk_in(session: AsyncSession, community: str, plate: str, at: datetime, policy: Policy) -> GateOutcome:
    """No booking: a free public spot takes the car at the public rate, charged on exit."""
    until = at + timedelta(minutes=policy.walk_in_block_minutes)
    params = {"community": community, "at": at, "until": until}
    spot_id: uuid.UUID | None = (await session.execute(text(_FREE_PUBLIC_SPOT_SQL), params)).scalar_one_or_none()
    if spot_id is None:
        return GateOutcome("refused", "no-booking")
    now = datetime.now(UTC)
    walk_in = Booking(
        id=uuid.uuid4(),
        community=community,
        spot_id=spot_id,
        kind="walk_in",
        plate=plate,
        starts_at=at,
        ends_at=until,
        block_ends_at=until,
        status=BookingStatus.active.value,
        price_fen_per_30min=policy.public_rate_fen_per_30min,
        fee_fen=0,
        entered_at=at,
        created_at=now,
        updated_at=now,
    )
    session.add(walk_in)
    await session.flush()
    return GateOutcome("open", "public-rate", walk_in)


async def _match_entry(session: AsyncSession, community: str, plate: str, at: datetime, policy: Policy) -> GateOutcome:
    grace = timedelta(minutes=policy.entry_grace_minutes)
    query = (
        select(Booking)
        .where(
            BOOKINGS.c.community == community,
            BOOKINGS.c.plate == plate,
            BOOKINGS.c.kind == "booking",
            BOOKINGS.c.status == BookingStatus.confirmed.value,
            may_enter(BOOKINGS.c.starts_at, BOOKINGS.c.ends_at, at, grace),
        )
        .order_by(BOOKINGS.c.starts_at)
        .limit(1)
        .with_for_update()
    )
    booking: Booking | None = (await session.execute(query)).scalar_one_or_none()
    if booking is None:
        # No booking: a visitor pass with this plate, by the same matching, else a walk-in.
        window = may_enter(VISITOR_PLATES.c.valid_from, VISITOR_PLATES.c.valid_until, at, grace)
        visitor_pass = await visitors.admit(session, community, plate, window)
        if visitor_pass is not None:
            return GateOutcome("open", "visitor-pass", visitor_pass_id=visitor_pass)
        return await _walk_in(session, community, plate, at, policy)
    booking.status = BookingStatus.active.value
    booking.entered_at = at
    booking.updated_at = datetime.now(UTC)
    return GateOutcome("open", "booking", booking)


async def _match_exit(
    session: AsyncSession, community: str, plate: str, at: datetime, policy: Policy, payments: PaymentProvider
) -> GateOutcome:
    query = (
        select(Booking)
        .where(
            BOOKINGS.c.community == community,
            BOOKINGS.c.plate == plate,
            BOOKINGS.c.status == BookingStatus.active.value,
        )
        .order_by(BOOKINGS.c.entered_at)
        .limit(1)
        .with_for_update()
    )
    booking: Booking | None = (await session.execute(query)).scalar_one_or_none()
    if booking is None:
        visitor_pass = await visitors.came_on_a_pass(session, community, plate, at - GATE_OFFLINE_BACKLOG)
        if visitor_pass is not None:
            return GateOutcome("open", "visitor-pass", visitor_pass_id=visitor_pass)
        # Never trap a car: the barrier opens, and the unmatched exit is kept for staff to review.
        return GateOutcome("open", "no-active-booking")
    now = datetime.now(UTC)
    if booking.kind == "walk_in":
        assert booking.entered_at is not None
        due = domain.fee_fen(booking.entered_at, at, booking.price_fen_per_30min)
        booking.fee_fen = due
        overstay = 0
    else:
        overstay = domain.overstay_fen(booking.ends_at, at, booking.price_fen_per_30min)
        due = overstay
    if due > 0:
        result = await payments.charge(reference=str(booking.id), amount_fen=due, method="gate")
        session.add(
            Payment(
                id=uuid.uuid4(),
                community=community,
                booking_id=booking.id,
                kind="charge",
                amount_fen=due,
                provider=payments.name,
                provider_ref=result.provider_ref,
                created_at=now,
            )
        )
    booking.overstay_fen = overstay
    booking.paid_fen += due
    total = booking.paid_fen - booking.refunded_fen
    if booking.owner_id is None:
        # A public spot has no resident owner: the owner's share goes to property.
        split = domain.split_fee(total, 0, policy.owner_share_bp + policy.property_share_bp)
    else:
        split = domain.split_fee(total, policy.owner_share_bp, policy.property_share_bp)
    booking.owner_share_fen, booking.property_share_fen = split.owner_fen, split.property_fen
    booking.platform_share_fen = split.platform_fen
    booking.exited_at = at
    booking.status = BookingStatus.completed.value
    booking.updated_at = now
    if booking.kind == "booking" and booking.owner_id is not None:
        await publisher.publish(
            session,
            BookingCompleted(
                booking_id=str(booking.id),
                community=community,
                spot_id=str(booking.spot_id),
                owner_id=booking.owner_id,
                booker_id=booking.booker_id,
                start=booking.starts_at,
                end=booking.ends_at,
                fee_fen=total,
                owner_share_fen=split.owner_fen,
                completed_at=at,
            ),
            key=str(booking.id),
        )
    return GateOutcome("open", "overstay" if overstay else "booking", booking, charged_fen=due, overstay_fen=overstay)


def _decision(event: GateEvent, outcome: GateOutcome) -> GateDecision:
    return GateDecision(
        event_id=event.id,
        decision=outcome.decision,
        reason=outcome.reason,
        booking_id=outcome.booking.id if outcome.booking else None,
        spot_id=outcome.booking.spot_id if outcome.booking else None,
        charged_fen=outcome.charged_fen,
        overstay_fen=outcome.overstay_fen,
        visitor_pass_id=outcome.visitor_pass_id,
    )


async def gate_pass(
    session: AsyncSession,
    principal: Principal,
    direction: GateDirection,
    plate: str,
    at: datetime | None,
    payments: PaymentProvider,
) -> GateDecision:
    """Match a plate read at a barrier and record the event; the decision says whether it opens."""
    now = datetime.now(UTC)
    when = _gate_time(at, now)
    policy = await policy_for(session, principal.community)
    async with transaction(session):
        device = await _device(session, principal)
        if direction == "entry":
            outcome = await _match_entry(session, principal.community, plate, when, policy)
        else:
            outcome = await _match_exit(session, principal.community, plate, when, policy, payments)
        event = GateEvent(
            id=uuid.uuid4(),
            community=principal.community,
            device_id=device.id,
            direction=direction,
            plate=plate,
            at=when,
            decision=outcome.decision,
            reason=outcome.reason,
            booking_id=outcome.booking.id if outcome.booking else None,
            visitor_pass_id=outcome.visitor_pass_id,
            charged_fen=outcome.charged_fen,
            created_at=now,
        )
        session.add(event)
    return _decision(event, outcome)


async def correct_plate(
    session: AsyncSession, principal: Principal, event_id: uuid.UUID, plate: str, payments: PaymentProvider
) -> GateDecision:
    """A steward fixes a misread plate; the event is matched again as if the camera had read it right."""
    policy = await policy_for(session, principal.community)
    async with transaction(session):
        query = select(GateEvent).where(GATE_EVENTS.c.id == event_id, GATE_EVENTS.c.community == principal.community)
        event: GateEvent | None = (await session.execute(query.with_for_update())).scalar_one_or_none()
        if event is None:
            raise problems.GateEventNotFound()
        previous = await session.get(Booking, event.booking_id, with_for_update=True) if event.booking_id else None
        if previous is not None:
            if not (event.direction == "entry" and previous.kind == "walk_in" and previous.status == BookingStatus.active.value):
                raise problems.InvalidBookingState(("该记录已匹配预约，无法重新匹配", "This event already matched a booking"))
            # The car was let in at the public rate under the wrong plate: undo that, uncharged.
            previous.status = BookingStatus.cancelled.value
            previous.cancelled_by = "staff"
            previous.updated_at = datetime.now(UTC)
            await session.flush()
        if event.direction == "entry":
            outcome = await _match_entry(session, principal.community, plate, event.at, policy)
        else:
            outcome = await _match_exit(session, principal.community, plate, event.at, policy, payments)
        event.corrected_plate = plate
        event.corrected_by = principal.subject
        event.decision, event.reason = outcome.decision, f"corrected:{outcome.reason}"
        event.booking_id = outcome.booking.id if outcome.booking else None
        event.visitor_pass_id = outcome.visitor_pass_id
        event.charged_fen = outcome.charged_fen
    decision = _decision(event, outcome)
    decision.reason = event.reason
    return decision


def _gate_event_cursor(event: GateEvent) -> list[str]:
    return [event.at.isoformat(), str(event.id)]


async def list_gate_events(
    session: AsyncSession, principal: Principal, decision: BarrierDecision | None, page: PageParams
) -> tuple[list[GateEvent], str | None]:
    """The community's gate events, newest first."""
    query = select(GateEvent).where(GATE_EVENTS.c.community == principal.community)
    if decision:
        query = query.where(GATE_EVENTS.c.decision == decision)
    after = page.after()
    if after:
        at, eid = datetime.fromisoformat(str(after[0])), uuid.UUID(str(after[1]))
        query = query.where(or_(GATE_EVENTS.c.at < at, and_(GATE_EVENTS.c.at == at, GATE_EVENTS.c.id < eid)))
    query = query.order_by(GATE_EVENTS.c.at.desc(), GATE_EVENTS.c.id.desc()).limit(page.limit + 1)
    async with transaction(session):
        rows = list((await session.execute(query)).scalars())
    return make_page(rows, page.limit, _gate_event_cursor)
