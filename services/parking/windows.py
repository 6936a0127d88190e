"""Availability windows (共享时段) and their occurrences: owners publish, shrink and withdraw them; a job
keeps weekly windows expanded to the horizon. Bookings lock the occurrence they lie in, and so do
shrink and withdraw, so neither can race a booking."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.parking import domain, problems
from services.parking.domain import BLOCKING_STATUSES, SPOT_ADMINS
from services.parking.models import (
    BOOKINGS,
    OCCURRENCES,
    OPEN,
    WINDOWS,
    AvailabilityWindow,
    Booking,
    Spot,
    WindowOccurrence,
    changed_rows,
)
from services.parking.policy import policy_for
from services.parking.schemas import WindowCreate, WindowShrink
from services.parking.spots import spot_for

FAR_FUTURE = date(9999, 12, 31)
# Shrinking looks at every occurrence of the window, however old.
_ANY_TIME_AGO = timedelta(days=3650)


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
            status=OPEN,
        )
        for i in intervals
    ]
    stmt = insert(OCCURRENCES).values(rows)
    if skip_conflicts:
        # The job extending weekly windows skips days another window took meanwhile.
        stmt = stmt.on_conflict_do_nothing()
    result = await session.execute(stmt)
    return changed_rows(result)


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


def _minute(t: time) -> time:
    return t.replace(second=0, microsecond=0, tzinfo=None)


def _one_off_intervals(window: AvailabilityWindow, body: WindowCreate, now: datetime, min_minutes: int) -> list[domain.Interval]:
    if body.starts_at is None or body.ends_at is None:
        raise problems.InvalidTimeRange(("单次时段需要开始和结束时间", "A one-off window needs starts_at and ends_at"))
    try:
        domain.check_window_range(body.starts_at, body.ends_at, now=now, min_minutes=min_minutes)
    except domain.RangeProblem as err:
        raise problems.range_problem(err, "共享时段") from None
    window.starts_at, window.ends_at = body.starts_at, body.ends_at
    return [domain.Interval(body.starts_at, body.ends_at)]


def _weekly_window_intervals(
    window: AvailabilityWindow, body: WindowCreate, now: datetime, min_minutes: int, horizon_days: int
) -> list[domain.Interval]:
    if not body.weekdays or body.local_start is None or body.local_end is None:
        raise problems.InvalidTimeRange(
            ("每周时段需要星期和起止时间", "A weekly window needs weekdays, local_start and local_end")
        )
    if domain.weekly_duration(body.local_start, body.local_end) < timedelta(minutes=min_minutes):
        raise problems.TooShort(("每周时段时长不足", "The weekly window is too short"))
    if body.valid_from and body.valid_until and body.valid_until < body.valid_from:
        raise problems.InvalidTimeRange(("结束日期早于开始日期", "valid_until is before valid_from"))
    window.weekdays = "".join(str(d) for d in sorted(set(body.weekdays)))
    window.local_start, window.local_end = _minute(body.local_start), _minute(body.local_end)
    window.valid_from, window.valid_until = body.valid_from, body.valid_until
    until = domain.local_today(now) + timedelta(days=horizon_days)
    intervals = _weekly_intervals(window, until, now)
    window.expanded_until = until
    return intervals


async def publish_window(
    session: AsyncSession, principal: Principal, spot_id: uuid.UUID, body: WindowCreate, horizon_days: int
) -> AvailabilityWindow:
    """Offer a verified spot for a one-off range or every week; weekly windows are expanded into
    occurrences up to the horizon. Overlapping another window of the spot is refused."""
    now = datetime.now(UTC)
    policy = await policy_for(session, principal.community)
    window = AvailabilityWindow(
        id=uuid.uuid4(),
        community=principal.community,
        spot_id=spot_id,
        kind=body.kind,
        price_fen_per_30min=body.price_fen_per_30min,
        buffer_minutes=body.buffer_minutes,
        status=OPEN,
        created_at=now,
    )
    if body.kind == "one_off":
        intervals = _one_off_intervals(window, body, now, policy.min_window_minutes)
    else:
        intervals = _weekly_window_intervals(window, body, now, policy.min_window_minutes, horizon_days)
    async with transaction(session):
        spot = await spot_for(session, principal, spot_id, lock=True)
        _may_publish(principal, spot)
        if spot.status != "verified":
            raise problems.SpotNotVerified()
        session.add(window)
        await session.flush()
        try:
            await _insert_occurrences(session, window, intervals, skip_conflicts=False)
        except IntegrityError as exc:
            constraint = problems.violated_constraint(exc)
            if "ex_window_occurrences" in constraint or "uq_window_occurrences" in constraint:
                raise problems.WindowOverlaps() from None
            raise
    return window


async def _window_for(session: AsyncSession, principal: Principal, window_id: uuid.UUID) -> AvailabilityWindow:
    """The window, locked, if the caller owns its spot or administers spots; others get 404."""
    window: AvailabilityWindow | None = (
        await session.execute(
            select(AvailabilityWindow)
            .where(WINDOWS.c.id == window_id, WINDOWS.c.community == principal.community)
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


def _window_cursor(window: AvailabilityWindow) -> list[str]:
    return [window.created_at.isoformat(), str(window.id)]


async def list_windows(
    session: AsyncSession, principal: Principal, spot_id: uuid.UUID, page: PageParams
) -> tuple[list[AvailabilityWindow], str | None]:
    """A spot's windows, oldest first; the id breaks a tie between windows made in one instant."""
    query = select(AvailabilityWindow).where(WINDOWS.c.spot_id == spot_id)
    after = page.after_key(datetime, uuid.UUID)
    if after:
        query = query.where(after_key_condition([WINDOWS.c.created_at, WINDOWS.c.id], after))
    query = query.order_by(WINDOWS.c.created_at, WINDOWS.c.id).limit(page.limit + 1)
    async with transaction(session):
        await spot_for(session, principal, spot_id)
        rows = list((await session.execute(query)).scalars())
    return make_page(rows, page.limit, _window_cursor)


def _occurrence_cursor(occurrence: WindowOccurrence) -> list[str]:
    return [occurrence.starts_at.isoformat()]


async def list_occurrences(
    session: AsyncSession, principal: Principal, window_id: uuid.UUID, page: PageParams
) -> tuple[list[WindowOccurrence], str | None]:
    query = select(WindowOccurrence).where(OCCURRENCES.c.window_id == window_id)
    after = page.after()
    if after:
        query = query.where(OCCURRENCES.c.starts_at > datetime.fromisoformat(str(after[0])))
    async with transaction(session):
        await _window_for(session, principal, window_id)
        rows = list((await session.execute(query.order_by(OCCURRENCES.c.starts_at).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, _occurrence_cursor)


async def _lock_open_occurrences(session: AsyncSession, window_id: uuid.UUID, now: datetime) -> list[WindowOccurrence]:
    query = (
        select(WindowOccurrence)
        .where(OCCURRENCES.c.window_id == window_id, OCCURRENCES.c.status == OPEN, OCCURRENCES.c.ends_at > now)
        .order_by(OCCURRENCES.c.starts_at)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


async def _blocking_bookings(session: AsyncSession, occurrence_ids: list[uuid.UUID]) -> list[Booking]:
    if not occurrence_ids:
        return []
    query = select(Booking).where(
        BOOKINGS.c.occurrence_id.in_(occurrence_ids), BOOKINGS.c.status.in_([s.value for s in BLOCKING_STATUSES])
    )
    return list((await session.execute(query)).scalars())


async def withdraw_window(session: AsyncSession, principal: Principal, window_id: uuid.UUID) -> AvailabilityWindow:
    """Withdraw what is left of a window; refused while any booking still holds a part of it."""
    now = datetime.now(UTC)
    async with transaction(session):
        window = await _window_for(session, principal, window_id)
        occurrences = await _lock_open_occurrences(session, window_id, now)
        # Occurrences are locked, so no booking can slip in between this check and the update.
        booked = await _blocking_bookings(session, [o.id for o in occurrences])
        if booked:
            raise problems.WindowInUse(bookings=len(booked))
        await session.execute(
            update(OCCURRENCES)
            .where(OCCURRENCES.c.window_id == window_id, OCCURRENCES.c.status == OPEN, OCCURRENCES.c.ends_at > now)
            .values(status="withdrawn")
        )
        window.status = "withdrawn"
    return window


async def shrink_window(
    session: AsyncSession, principal: Principal, window_id: uuid.UUID, body: WindowShrink
) -> AvailabilityWindow:
    """Shrink a one-off window to a sub-range that still holds every booking in it."""
    now = datetime.now(UTC)
    policy = await policy_for(session, principal.community)
    try:
        domain.check_window_range(body.starts_at, body.ends_at, now=now, min_minutes=policy.min_window_minutes)
    except domain.RangeProblem as err:
        raise problems.range_problem(err, "共享时段") from None
    async with transaction(session):
        window = await _window_for(session, principal, window_id)
        if window.kind != "one_off" or window.status != OPEN:
            raise problems.InvalidTimeRange(("只能缩短开放中的单次时段", "Only open one-off windows can be shrunk"))
        assert window.starts_at is not None and window.ends_at is not None
        new = domain.Interval(body.starts_at, body.ends_at)
        if not domain.Interval(window.starts_at, window.ends_at).contains(new):
            raise problems.InvalidTimeRange(("新时段必须在原时段之内", "The new range must lie inside the old one"))
        occurrences = await _lock_open_occurrences(session, window_id, now - _ANY_TIME_AGO)
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
    now = now or datetime.now(UTC)
    until = domain.local_today(now) + timedelta(days=horizon_days)
    added = 0
    query = (
        select(AvailabilityWindow)
        .where(
            WINDOWS.c.kind == "weekly",
            WINDOWS.c.status == OPEN,
            or_(WINDOWS.c.expanded_until.is_(None), WINDOWS.c.expanded_until < until),
        )
        .with_for_update(skip_locked=True)
    )
    async with transaction(session):
        windows = list((await session.execute(query)).scalars())
        for window in windows:
            added += await _insert_occurrences(session, window, _weekly_intervals(window, until, now), skip_conflicts=True)
            window.expanded_until = until
    return added
