# mypy: disable-error-code="arg-type,union-attr,attr-defined,operator"
# (SQLModel columns are typed as their Python values, so SQL expressions built from them confuse mypy.)
"""Parking's use cases. Each runs in one transaction (`transaction(session)`) and writes its events
to the outbox in that transaction. Rules that can be raced are enforced by PostgreSQL: the
exclusion constraints on bookings and window occurrences, and row locks on the occurrence a booking
must lie inside."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.kit.problems import Forbidden
from services.parking import domain, problems
from services.parking.domain import BLOCKING_STATUSES, BookingStatus
from services.parking.events import BookingCompleted, publisher
from services.parking.models import (
    AvailabilityWindow,
    Booking,
    CommunitySettings,
    GateDevice,
    GateEvent,
    Payment,
    Spot,
    WindowOccurrence,
)
from services.parking.payments import PaymentProvider
from services.parking.schemas import (
    BookingCreate,
    BookingPay,
    CommunitySettingsBody,
    CommunitySettingsPublic,
    Earnings,
    EarningsMonth,
    FreeSpot,
    GateDecision,
    GateDeviceCreate,
    Occupancy,
    OccupancyHour,
    SpotCreate,
    WindowCreate,
    WindowShrink,
)

SPOT_ADMINS = ("steward", "property_admin")
BLOCKING = [s.value for s in BLOCKING_STATUSES]
GATE_CLOCK_SKEW = timedelta(minutes=5)
GATE_OFFLINE_BACKLOG = timedelta(hours=24)
FAR_FUTURE = date(9999, 12, 31)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _constraint(exc: IntegrityError) -> str:
    orig = exc.orig
    name = getattr(orig, "constraint_name", None) or getattr(getattr(orig, "__cause__", None), "constraint_name", None)
    return str(name or "")


def _range_problem(err: domain.RangeProblem, what: str) -> Exception:
    if err.code == "in-the-past":
        return problems.BookingInPast(("开始时间已过", "The start time has passed"))
    if err.code == "too-short":
        return problems.TooShort((f"{what}时长不足", f"The {what} is too short"))
    if err.code == "end-before-start":
        return problems.InvalidTimeRange(("结束时间必须晚于开始时间", "The end must be after the start"))
    return problems.InvalidTimeRange(("时间必须带时区", "Times must carry a UTC offset"))


# --- community settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    community: str
    owner_share_bp: int
    property_share_bp: int
    public_rate_fen_per_30min: int
    hold_minutes: int
    min_window_minutes: int
    min_booking_minutes: int
    full_refund_before_minutes: int
    late_cancel_refund_pct: int
    entry_grace_minutes: int
    walk_in_block_minutes: int

    def public(self) -> CommunitySettingsPublic:
        return CommunitySettingsPublic(
            **{k: v for k, v in self.__dict__.items()},
            platform_share_bp=domain.BASIS_POINTS - self.owner_share_bp - self.property_share_bp,
        )


_POLICY_FIELDS = tuple(CommunitySettingsBody.model_fields)


async def policy_for(session: AsyncSession, community: str) -> Policy:
    async with transaction(session):
        row = await session.get(CommunitySettings, community)
    if row is None:
        return Policy(community=community, **CommunitySettingsBody().model_dump())
    return Policy(community=community, **{f: getattr(row, f) for f in _POLICY_FIELDS})


async def put_settings(session: AsyncSession, principal: Principal, body: CommunitySettingsBody) -> Policy:
    if body.owner_share_bp + body.property_share_bp > domain.BASIS_POINTS:
        raise problems.InvalidSettings(("业主与物业分成之和不能超过100%", "Owner and property shares exceed 100%"))
    async with transaction(session):
        values = {**body.model_dump(), "updated_at": utcnow()}
        await session.execute(
            insert(CommunitySettings)
            .values(community=principal.community, **values)
            .on_conflict_do_update(index_elements=["community"], set_=values)
        )
    return Policy(community=principal.community, **body.model_dump())


# --- spots --------------------------------------------------------------------------------------


async def register_spot(session: AsyncSession, principal: Principal, body: SpotCreate) -> Spot:
    """A resident registers their private spot (pending until staff verify it); staff register
    public spots, which are verified at once."""
    if body.kind == "public" and not principal.has(*SPOT_ADMINS):
        raise Forbidden(("只有物业可以登记公共车位", "Only property staff register public spots"))
    if body.kind == "private" and not principal.has("resident"):
        raise Forbidden(("只有居民可以登记私家车位", "Only residents register private spots"))
    spot = Spot(
        id=uuid.uuid4(),
        community=principal.community,
        kind=body.kind,
        owner_id=principal.subject if body.kind == "private" else None,
        code=body.code,
        location=body.location,
        size=body.size,
        has_charger=body.has_charger,
        status="verified" if body.kind == "public" else "pending",
        verified_by=principal.subject if body.kind == "public" else None,
        created_at=utcnow(),
    )
    async with transaction(session):
        session.add(spot)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.DuplicateSpot() from None
    return spot


async def _spot_for(session: AsyncSession, principal: Principal, spot_id: uuid.UUID, *, lock: bool = False) -> Spot:
    """The spot if the caller may manage it: its owner, or staff; others get 404."""
    query = select(Spot).where(Spot.id == spot_id, Spot.community == principal.community)
    spot: Spot | None = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if spot is None or not (principal.is_staff or spot.owner_id == principal.subject):
        raise problems.SpotNotFound()
    return spot


async def verify_spot(session: AsyncSession, principal: Principal, spot_id: uuid.UUID, approve: bool) -> Spot:
    async with transaction(session):
        spot = await _spot_for(session, principal, spot_id, lock=True)
        spot.status = "verified" if approve else "rejected"
        spot.verified_by = principal.subject
    return spot


async def get_spot(session: AsyncSession, principal: Principal, spot_id: uuid.UUID) -> Spot:
    async with transaction(session):
        return await _spot_for(session, principal, spot_id)


async def list_spots(
    session: AsyncSession, principal: Principal, page: PageParams, status: str | None
) -> tuple[list[Spot], str | None]:
    query = select(Spot).where(Spot.community == principal.community)
    if not principal.is_staff:
        query = query.where(Spot.owner_id == principal.subject)
    if status:
        query = query.where(Spot.status == status)
    after = page.after()
    if after:
        query = query.where(Spot.code > str(after[0]))
    async with transaction(session):
        rows = list((await session.execute(query.order_by(Spot.code).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, lambda s: [s.code])


# --- windows ------------------------------------------------------------------------------------


def _may_publish(principal: Principal, spot: Spot) -> None:
    allowed = spot.owner_id == principal.subject if spot.kind == "private" else principal.has(*SPOT_ADMINS)
    if not allowed:
        raise problems.NotSpotOwner()


async def _insert_occurrences(
    session: AsyncSession,
    window: AvailabilityWindow,
    intervals: Sequence[domain.Interval],
    *,
    skip_conflicts: bool,
) -> int:
    if not intervals:
        return 0
    rows = [
        dict(
            id=uuid.uuid4(),
            window_id=window.id,
            community=window.community,
            spot_id=window.spot_id,
            starts_at=i.start,
            ends_at=i.end,
            price_fen_per_30min=window.price_fen_per_30min,
            buffer_minutes=window.buffer_minutes,
            status="open",
        )
        for i in intervals
    ]
    stmt = insert(WindowOccurrence).values(rows)
    if skip_conflicts:
        # The job extending weekly windows skips days another window took meanwhile.
        stmt = stmt.on_conflict_do_nothing()
    result = await session.execute(stmt)
    return int(result.rowcount or 0)


def _weekly_intervals(window: AvailabilityWindow, until: date, now: datetime) -> list[domain.Interval]:
    assert window.weekdays and window.local_start is not None and window.local_end is not None
    today = domain.local_today(now)
    # Start a day early: yesterday's overnight occurrence may still be running.
    first = max(window.valid_from or today, today - timedelta(days=1))
    if window.expanded_until is not None:
        first = max(first, window.expanded_until + timedelta(days=1))
    last = min(window.valid_until or FAR_FUTURE, until)
    days = frozenset(int(c) for c in window.weekdays)
    return [i for i in domain.expand_weekly(days, window.local_start, window.local_end, first, last) if i.end > now]


async def publish_window(
    session: AsyncSession, principal: Principal, spot_id: uuid.UUID, body: WindowCreate, horizon_days: int
) -> AvailabilityWindow:
    now = utcnow()
    policy = await policy_for(session, principal.community)
    window = AvailabilityWindow(
        id=uuid.uuid4(),
        community=principal.community,
        spot_id=spot_id,
        kind=body.kind,
        price_fen_per_30min=body.price_fen_per_30min,
        buffer_minutes=body.buffer_minutes,
        status="open",
        created_at=now,
    )
    intervals: list[domain.Interval]
    if body.kind == "one_off":
        if body.starts_at is None or body.ends_at is None:
            raise problems.InvalidTimeRange(("单次时段需要开始和结束时间", "A one-off window needs starts_at and ends_at"))
        try:
            domain.check_window_range(body.starts_at, body.ends_at, now=now, min_minutes=policy.min_window_minutes)
        except domain.RangeProblem as err:
            raise _range_problem(err, "共享时段") from None
        window.starts_at, window.ends_at = body.starts_at, body.ends_at
        intervals = [domain.Interval(body.starts_at, body.ends_at)]
    else:
        if not body.weekdays or body.local_start is None or body.local_end is None:
            raise problems.InvalidTimeRange(
                ("每周时段需要星期和起止时间", "A weekly window needs weekdays, local_start and local_end")
            )
        if domain.weekly_duration(body.local_start, body.local_end) < timedelta(minutes=policy.min_window_minutes):
            raise problems.TooShort(("每周时段时长不足", "The weekly window is too short"))
        if body.valid_from and body.valid_until and body.valid_until < body.valid_from:
            raise problems.InvalidTimeRange(("结束日期早于开始日期", "valid_until is before valid_from"))
        window.weekdays = "".join(str(d) for d in sorted(set(body.weekdays)))
        window.local_start, window.local_end = _minute(body.local_start), _minute(body.local_end)
        window.valid_from, window.valid_until = body.valid_from, body.valid_until
        until = domain.local_today(now) + timedelta(days=horizon_days)
        intervals = _weekly_intervals(window, until, now)
        window.expanded_until = until
    async with transaction(session):
        spot = await _spot_for(session, principal, spot_id, lock=True)
        _may_publish(principal, spot)
        if spot.status != "verified":
            raise problems.SpotNotVerified()
        session.add(window)
        await session.flush()
        try:
            await _insert_occurrences(session, window, intervals, skip_conflicts=False)
        except IntegrityError as exc:
            if "ex_window_occurrences" in _constraint(exc) or "uq_window_occurrences" in _constraint(exc):
                raise problems.WindowOverlaps() from None
            raise
    return window


def _minute(t: time) -> time:
    return t.replace(second=0, microsecond=0, tzinfo=None)


async def _window_for(session: AsyncSession, principal: Principal, window_id: uuid.UUID) -> AvailabilityWindow:
    window: AvailabilityWindow | None = (
        await session.execute(
            select(AvailabilityWindow)
            .where(AvailabilityWindow.id == window_id, AvailabilityWindow.community == principal.community)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if window is None:
        raise problems.WindowNotFound()
    spot = await session.get(Spot, window.spot_id)
    assert spot is not None
    if not (spot.owner_id == principal.subject or principal.has(*SPOT_ADMINS)):
        raise problems.WindowNotFound()
    return window


async def list_windows(session: AsyncSession, principal: Principal, spot_id: uuid.UUID) -> list[AvailabilityWindow]:
    async with transaction(session):
        await _spot_for(session, principal, spot_id)
        return list(
            (
                await session.execute(
                    select(AvailabilityWindow)
                    .where(AvailabilityWindow.spot_id == spot_id)
                    .order_by(AvailabilityWindow.created_at)
                )
            ).scalars()
        )


async def list_occurrences(
    session: AsyncSession, principal: Principal, window_id: uuid.UUID, page: PageParams
) -> tuple[list[WindowOccurrence], str | None]:
    query = select(WindowOccurrence).where(WindowOccurrence.window_id == window_id)
    after = page.after()
    if after:
        query = query.where(WindowOccurrence.starts_at > datetime.fromisoformat(str(after[0])))
    async with transaction(session):
        await _window_for(session, principal, window_id)
        rows = list((await session.execute(query.order_by(WindowOccurrence.starts_at).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, lambda o: [o.starts_at.isoformat()])


async def _lock_open_occurrences(session: AsyncSession, window_id: uuid.UUID, now: datetime) -> list[WindowOccurrence]:
    return list(
        (
            await session.execute(
                select(WindowOccurrence)
                .where(
                    WindowOccurrence.window_id == window_id,
                    WindowOccurrence.status == "open",
                    WindowOccurrence.ends_at > now,
                )
                .order_by(WindowOccurrence.starts_at)
                .with_for_update()
            )
        ).scalars()
    )


async def _blocking_bookings(session: AsyncSession, occurrence_ids: list[uuid.UUID]) -> list[Booking]:
    if not occurrence_ids:
        return []
    return list(
        (
            await session.execute(
                select(Booking).where(
                    Booking.occurrence_id.in_(occurrence_ids),
                    Booking.status.in_(BLOCKING),
                )
            )
        ).scalars()
    )


async def withdraw_window(session: AsyncSession, principal: Principal, window_id: uuid.UUID) -> AvailabilityWindow:
    """Withdraw what is left of a window; refused while any booking still holds a part of it."""
    now = utcnow()
    async with transaction(session):
        window = await _window_for(session, principal, window_id)
        occurrences = await _lock_open_occurrences(session, window_id, now)
        # Occurrences are locked, so no booking can slip in between this check and the update.
        booked = await _blocking_bookings(session, [o.id for o in occurrences])
        if booked:
            raise problems.WindowInUse(bookings=len(booked))
        await session.execute(
            update(WindowOccurrence)
            .where(
                WindowOccurrence.window_id == window_id,
                WindowOccurrence.status == "open",
                WindowOccurrence.ends_at > now,
            )
            .values(status="withdrawn")
        )
        window.status = "withdrawn"
    return window


async def shrink_window(
    session: AsyncSession, principal: Principal, window_id: uuid.UUID, body: WindowShrink
) -> AvailabilityWindow:
    """Shrink a one-off window to a sub-range that still holds every booking in it."""
    now = utcnow()
    policy = await policy_for(session, principal.community)
    try:
        domain.check_window_range(body.starts_at, body.ends_at, now=now, min_minutes=policy.min_window_minutes)
    except domain.RangeProblem as err:
        raise _range_problem(err, "共享时段") from None
    async with transaction(session):
        window = await _window_for(session, principal, window_id)
        if window.kind != "one_off" or window.status != "open":
            raise problems.InvalidTimeRange(("只能缩短开放中的单次时段", "Only open one-off windows can be shrunk"))
        assert window.starts_at is not None and window.ends_at is not None
        new = domain.Interval(body.starts_at, body.ends_at)
        if not domain.Interval(window.starts_at, window.ends_at).contains(new):
            raise problems.InvalidTimeRange(("新时段必须在原时段之内", "The new range must lie inside the old one"))
        occurrences = await _lock_open_occurrences(session, window_id, now - timedelta(days=3650))
        booked = await _blocking_bookings(session, [o.id for o in occurrences])
        outside = [b for b in booked if not new.contains(domain.Interval(b.starts_at, b.block_ends_at))]
        if outside:
            raise problems.WindowInUse(bookings=len(outside))
        for occ in occurrences:
            occ.starts_at, occ.ends_at = body.starts_at, body.ends_at
        window.starts_at, window.ends_at = body.starts_at, body.ends_at
    return window


async def extend_weekly_windows(session: AsyncSession, horizon_days: int, now: datetime | None = None) -> int:
    """Expand open weekly windows up to the horizon (the scheduled job); returns occurrences added."""
    now = now or utcnow()
    until = domain.local_today(now) + timedelta(days=horizon_days)
    added = 0
    async with transaction(session):
        windows = list(
            (
                await session.execute(
                    select(AvailabilityWindow)
                    .where(
                        AvailabilityWindow.kind == "weekly",
                        AvailabilityWindow.status == "open",
                        or_(
                            AvailabilityWindow.expanded_until.is_(None),
                            AvailabilityWindow.expanded_until < until,
                        ),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        for window in windows:
            added += await _insert_occurrences(session, window, _weekly_intervals(window, until, now), skip_conflicts=True)
            window.expanded_until = until
    return added


# --- search -------------------------------------------------------------------------------------

_SEARCH_SQL = """
SELECT s.id AS spot_id, s.code, s.location, s.kind, s.size, s.has_charger,
       o.id AS occurrence_id, o.price_fen_per_30min
FROM window_occurrences o
JOIN spots s ON s.id = o.spot_id
WHERE o.community = :community AND o.status = 'open'
  AND o.period @> tstzrange(CAST(:start AS timestamptz), CAST(:end AS timestamptz), '[)')
  AND s.status = 'verified' {filters}
  AND NOT EXISTS (
      SELECT 1 FROM bookings b
      WHERE b.spot_id = o.spot_id AND b.status IN ('held', 'confirmed', 'active')
        AND b.blocked && tstzrange(CAST(:start AS timestamptz),
                                   CAST(:end AS timestamptz) + make_interval(mins => o.buffer_minutes), '[)')
        AND NOT (b.status = 'held' AND b.hold_expires_at <= now()))
ORDER BY s.id
LIMIT :limit
"""


async def search_free(
    session: AsyncSession,
    principal: Principal,
    start: datetime,
    end: datetime,
    size: str | None,
    charging: bool | None,
    page: PageParams,
) -> tuple[list[FreeSpot], str | None]:
    if end <= start:
        raise problems.InvalidTimeRange(("结束时间必须晚于开始时间", "The end must be after the start"))
    filters = []
    params: dict[str, Any] = {
        "community": principal.community,
        "start": start,
        "end": end,
        "limit": page.limit + 1,
    }
    if size:
        filters.append("AND s.size = :size")
        params["size"] = size
    if charging is not None:
        filters.append("AND s.has_charger = :charging")
        params["charging"] = charging
    after = page.after()
    if after:
        filters.append("AND s.id > :after")
        params["after"] = uuid.UUID(str(after[0]))
    async with transaction(session):
        rows = (await session.execute(text(_SEARCH_SQL.format(filters=" ".join(filters))), params)).all()
    spots = [
        FreeSpot(
            spot_id=r.spot_id,
            code=r.code,
            location=r.location,
            kind=r.kind,
            size=r.size,
            has_charger=r.has_charger,
            occurrence_id=r.occurrence_id,
            price_fen_per_30min=r.price_fen_per_30min,
            fee_fen=domain.fee_fen(start, end, r.price_fen_per_30min),
        )
        for r in rows
    ]
    return make_page(spots, page.limit, lambda f: [str(f.spot_id)])


# --- bookings -----------------------------------------------------------------------------------


async def _expire_stale_holds(session: AsyncSession, now: datetime, spot_id: uuid.UUID | None = None) -> int:
    stmt = update(Booking).where(Booking.status == BookingStatus.held.value, Booking.hold_expires_at <= now)
    if spot_id is not None:
        stmt = stmt.where(Booking.spot_id == spot_id)
    result = await session.execute(stmt.values(status=BookingStatus.expired.value, updated_at=now))
    return int(result.rowcount or 0)


async def create_booking(session: AsyncSession, principal: Principal, body: BookingCreate) -> Booking:
    """Hold a spot for [starts_at, ends_at): inside one open occurrence (locked), never overlapping
    another holding booking (the exclusion constraint decides races)."""
    now = utcnow()
    policy = await policy_for(session, principal.community)
    try:
        domain.check_booking_range(body.starts_at, body.ends_at, now=now, min_minutes=policy.min_booking_minutes)
    except domain.RangeProblem as err:
        raise _range_problem(err, "预约") from None
    async with transaction(session):
        spot = (
            await session.execute(select(Spot).where(Spot.id == body.spot_id, Spot.community == principal.community))
        ).scalar_one_or_none()
        if spot is None or spot.status != "verified":
            raise problems.SpotNotFound()
        occurrence = (
            await session.execute(
                select(WindowOccurrence)
                .where(
                    WindowOccurrence.spot_id == body.spot_id,
                    WindowOccurrence.status == "open",
                    WindowOccurrence.starts_at <= body.starts_at,
                    WindowOccurrence.ends_at >= body.ends_at,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if occurrence is None:
            raise problems.OutsideWindow()
        await _expire_stale_holds(session, now, body.spot_id)
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
            if "ex_bookings_spot_blocked" in _constraint(exc):
                raise problems.BookingConflict() from None
            raise
    return booking


async def _booking_for(session: AsyncSession, principal: Principal, booking_id: uuid.UUID, *, lock: bool = False) -> Booking:
    query = select(Booking).where(Booking.id == booking_id, Booking.community == principal.community)
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
    now = utcnow()
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
    return booking


async def cancel_booking(
    session: AsyncSession, principal: Principal, booking_id: uuid.UUID, payments: PaymentProvider
) -> Booking:
    now = utcnow()
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
        booking.cancelled_by = (
            "owner"
            if principal.subject == booking.owner_id
            else "staff"
            if principal.is_staff and principal.subject != booking.booker_id
            else "booker"
        )
        booking.hold_expires_at = None
        booking.updated_at = now
    return booking


async def list_bookings(
    session: AsyncSession, principal: Principal, role: str, status: str | None, page: PageParams
) -> tuple[list[Booking], str | None]:
    query = select(Booking).where(Booking.community == principal.community)
    if role == "owner":
        query = query.where(Booking.owner_id == principal.subject)
    elif role == "all" and principal.is_staff:
        pass
    else:
        query = query.where(Booking.booker_id == principal.subject)
    if status:
        query = query.where(Booking.status == status)
    after = page.after()
    if after:
        start, bid = datetime.fromisoformat(str(after[0])), uuid.UUID(str(after[1]))
        query = query.where(or_(Booking.starts_at > start, and_(Booking.starts_at == start, Booking.id > bid)))
    async with transaction(session):
        rows = list((await session.execute(query.order_by(Booking.starts_at, Booking.id).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, lambda b: [b.starts_at.isoformat(), str(b.id)])


async def expire_holds(session: AsyncSession, now: datetime | None = None) -> int:
    """Holds not paid in time free their spot (the scheduled job)."""
    async with transaction(session):
        return await _expire_stale_holds(session, now or utcnow())


# --- gate ---------------------------------------------------------------------------------------


async def register_device(session: AsyncSession, principal: Principal, body: GateDeviceCreate) -> GateDevice:
    device = GateDevice(id=body.id, community=principal.community, name=body.name, active=True, created_at=utcnow())
    async with transaction(session):
        session.add(device)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.DuplicateGateDevice() from None
    return device


async def list_devices(session: AsyncSession, principal: Principal) -> list[GateDevice]:
    async with transaction(session):
        return list(
            (
                await session.execute(
                    select(GateDevice).where(GateDevice.community == principal.community).order_by(GateDevice.id)
                )
            ).scalars()
        )


async def _device(session: AsyncSession, principal: Principal) -> GateDevice:
    device: GateDevice | None = (
        await session.execute(
            select(GateDevice).where(
                GateDevice.id == principal.subject,
                GateDevice.community == principal.community,
                GateDevice.active.is_(True),
            )
        )
    ).scalar_one_or_none()
    if device is None:
        raise problems.UnknownGateDevice()
    return device


def _gate_time(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if not (now - GATE_OFFLINE_BACKLOG <= at <= now + GATE_CLOCK_SKEW):
        raise problems.InvalidTimeRange(("道闸时间与服务器时间相差过大", "The gate's clock is too far from the server's"))
    return at


@dataclass
class GateOutcome:
    decision: str
    reason: str
    booking: Booking | None = None
    charged_fen: int = 0
    overstay_fen: int = 0


async def _match_entry(session: AsyncSession, community: str, plate: str, at: datetime, policy: Policy) -> GateOutcome:
    grace = timedelta(minutes=policy.entry_grace_minutes)
    booking = (
        await session.execute(
            select(Booking)
            .where(
                Booking.community == community,
                Booking.plate == plate,
                Booking.kind == "booking",
                Booking.status == BookingStatus.confirmed.value,
                Booking.starts_at - grace <= at,
                Booking.ends_at > at,
            )
            .order_by(Booking.starts_at)
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if booking is not None:
        booking.status = BookingStatus.active.value
        booking.entered_at = at
        booking.updated_at = utcnow()
        return GateOutcome("open", "booking", booking)
    # No booking: a free public spot takes the car at the public rate, charged on exit.
    until = at + timedelta(minutes=policy.walk_in_block_minutes)
    free = (
        await session.execute(
            text("""
        SELECT s.id FROM spots s
        WHERE s.community = :community AND s.kind = 'public' AND s.status = 'verified'
          AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.spot_id = s.id
                          AND b.status IN ('held', 'confirmed', 'active')
                          AND b.blocked && tstzrange(:at, :until, '[)'))
        ORDER BY s.code LIMIT 1 FOR UPDATE SKIP LOCKED"""),
            {"community": community, "at": at, "until": until},
        )
    ).first()
    if free is None:
        return GateOutcome("refused", "no-booking")
    now = utcnow()
    walk_in = Booking(
        id=uuid.uuid4(),
        community=community,
        spot_id=free.id,
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


async def _match_exit(
    session: AsyncSession, community: str, plate: str, at: datetime, policy: Policy, payments: PaymentProvider
) -> GateOutcome:
    booking = (
        await session.execute(
            select(Booking)
            .where(
                Booking.community == community,
                Booking.plate == plate,
                Booking.status == BookingStatus.active.value,
            )
            .order_by(Booking.entered_at)
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if booking is None:
        # Never trap a car: the barrier opens, and the unmatched exit is kept for staff to review.
        return GateOutcome("open", "no-active-booking")
    now = utcnow()
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
    )


async def gate_pass(
    session: AsyncSession,
    principal: Principal,
    direction: str,
    plate: str,
    at: datetime | None,
    payments: PaymentProvider,
) -> GateDecision:
    now = utcnow()
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
        event = (
            await session.execute(
                select(GateEvent).where(GateEvent.id == event_id, GateEvent.community == principal.community).with_for_update()
            )
        ).scalar_one_or_none()
        if event is None:
            raise problems.GateEventNotFound()
        previous = await session.get(Booking, event.booking_id, with_for_update=True) if event.booking_id else None
        if previous is not None:
            if not (event.direction == "entry" and previous.kind == "walk_in" and previous.status == BookingStatus.active.value):
                raise problems.InvalidBookingState(("该记录已匹配预约，无法重新匹配", "This event already matched a booking"))
            # The car was let in at the public rate under the wrong plate: undo that, uncharged.
            previous.status = BookingStatus.cancelled.value
            previous.cancelled_by = "staff"
            previous.updated_at = utcnow()
            await session.flush()
        if event.direction == "entry":
            outcome = await _match_entry(session, principal.community, plate, event.at, policy)
        else:
            outcome = await _match_exit(session, principal.community, plate, event.at, policy, payments)
        event.corrected_plate = plate
        event.corrected_by = principal.subject
        event.decision, event.reason = outcome.decision, f"corrected:{outcome.reason}"
        event.booking_id = outcome.booking.id if outcome.booking else None
        event.charged_fen = outcome.charged_fen
    decision = _decision(event, outcome)
    decision.reason = event.reason
    return decision


async def list_gate_events(
    session: AsyncSession, principal: Principal, decision: str | None, page: PageParams
) -> tuple[list[GateEvent], str | None]:
    query = select(GateEvent).where(GateEvent.community == principal.community)
    if decision:
        query = query.where(GateEvent.decision == decision)
    after = page.after()
    if after:
        at, eid = datetime.fromisoformat(str(after[0])), uuid.UUID(str(after[1]))
        query = query.where(or_(GateEvent.at < at, and_(GateEvent.at == at, GateEvent.id < eid)))
    async with transaction(session):
        rows = list(
            (await session.execute(query.order_by(GateEvent.at.desc(), GateEvent.id.desc()).limit(page.limit + 1))).scalars()
        )
    return make_page(rows, page.limit, lambda e: [e.at.isoformat(), str(e.id)])


# --- views --------------------------------------------------------------------------------------


async def earnings(session: AsyncSession, principal: Principal) -> Earnings:
    month = func.to_char(func.timezone("Asia/Shanghai", Booking.exited_at), "YYYY-MM")
    async with transaction(session):
        rows = (
            await session.execute(
                select(
                    month.label("month"),
                    func.count().label("n"),
                    func.sum(Booking.paid_fen - Booking.refunded_fen),
                    func.sum(Booking.owner_share_fen),
                )
                .where(
                    Booking.community == principal.community,
                    Booking.owner_id == principal.subject,
                    Booking.status == BookingStatus.completed.value,
                )
                .group_by(month)
                .order_by(month.desc())
            )
        ).all()
    months = [EarningsMonth(month=r[0], bookings=r[1], fee_fen=int(r[2] or 0), owner_share_fen=int(r[3] or 0)) for r in rows]
    return Earnings(
        owner_id=principal.subject,
        total_owner_share_fen=sum(m.owner_share_fen for m in months),
        completed_bookings=sum(m.bookings for m in months),
        months=months,
    )


async def occupancy(session: AsyncSession, principal: Principal, day: date | None) -> Occupancy:
    now = utcnow()
    day = day or domain.local_today(now)
    first_hour = datetime.combine(day, time(0), tzinfo=domain.COMMUNITY_TZ)
    async with transaction(session):
        spots = (
            await session.execute(
                select(func.count()).select_from(Spot).where(Spot.community == principal.community, Spot.status == "verified")
            )
        ).scalar_one()
        occupied = (
            await session.execute(
                select(func.count())
                .select_from(Booking)
                .where(Booking.community == principal.community, Booking.status == BookingStatus.active.value)
            )
        ).scalar_one()
        booked = (
            await session.execute(
                select(func.count())
                .select_from(Booking)
                .where(
                    Booking.community == principal.community,
                    Booking.status.in_([BookingStatus.confirmed.value, BookingStatus.active.value]),
                    Booking.starts_at <= now,
                    Booking.ends_at > now,
                )
            )
        ).scalar_one()
        hours = (
            await session.execute(
                text("""
            SELECT h.start AS hour_start, count(DISTINCT b.spot_id) AS booked
            FROM generate_series(CAST(:first AS timestamptz),
                                 CAST(:first AS timestamptz) + interval '23 hours',
                                 interval '1 hour') AS h(start)
            LEFT JOIN bookings b ON b.community = :community
                 AND b.status IN ('held', 'confirmed', 'active', 'completed')
                 AND tstzrange(least(b.starts_at, coalesce(b.entered_at, b.starts_at)),
                               greatest(b.starts_at, coalesce(b.exited_at, b.ends_at)), '[)')
                     && tstzrange(h.start, h.start + interval '1 hour', '[)')
            GROUP BY h.start ORDER BY h.start"""),
                {"first": first_hour, "community": principal.community},
            )
        ).all()
    return Occupancy(
        at=now,
        spots=spots,
        occupied_now=occupied,
        booked_now=booked,
        hours=[OccupancyHour(hour_start=h.hour_start, booked_spots=h.booked) for h in hours],
    )
