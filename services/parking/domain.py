"""Parking's rules as pure functions over plain values: no database, no web.

Times are timezone-aware; ranges are half-open [start, end) so back-to-back bookings fit. Money is
integer fen; the billing unit is a started 30 minutes (不足30分钟按30分钟计).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal, get_args
from zoneinfo import ZoneInfo

COMMUNITY_TZ = ZoneInfo("Asia/Shanghai")
BILLING_UNIT = timedelta(minutes=30)
BASIS_POINTS = 10_000


# --- enumerated sets ------------------------------------------------------------------------------
# Each set is written here once; the models' constraints, the queries and the API read it from here.

SpotKind = Literal["private", "public"]
SpotSize = Literal["compact", "standard", "large"]
SpotStatus = Literal["pending", "verified", "rejected"]
WindowKind = Literal["one_off", "weekly"]
WindowStatus = Literal["open", "withdrawn"]  # a window and each of its occurrences
BookingKind = Literal["booking", "walk_in"]
CancelledBy = Literal["owner", "staff", "booker"]
PaymentKind = Literal["charge", "refund"]
GateDirection = Literal["entry", "exit"]
BarrierDecision = Literal["open", "refused"]

SPOT_KINDS: tuple[SpotKind, ...] = get_args(SpotKind)
SPOT_SIZES: tuple[SpotSize, ...] = get_args(SpotSize)
SPOT_STATUSES: tuple[SpotStatus, ...] = get_args(SpotStatus)
WINDOW_KINDS: tuple[WindowKind, ...] = get_args(WindowKind)
GATE_DIRECTIONS: tuple[GateDirection, ...] = get_args(GateDirection)

# Who administers spots: registers public ones, verifies private ones, publishes windows of public ones.
SPOT_ADMINS = ("steward", "property_admin")


class BookingStatus(StrEnum):
    held = "held"  # created, unpaid; expires after the community's hold minutes
    confirmed = "confirmed"  # paid
    active = "active"  # the car has entered
    completed = "completed"  # the car has left
    cancelled = "cancelled"
    expired = "expired"


# Statuses that occupy the spot: the exclusion constraint applies to these only.
BLOCKING_STATUSES = (BookingStatus.held, BookingStatus.confirmed, BookingStatus.active)
# Statuses of bookings that took (or take) the spot for their time: the occupancy report counts these.
OCCUPYING_STATUSES = (*BLOCKING_STATUSES, BookingStatus.completed)


# --- plates ---------------------------------------------------------------------------------------

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # no I or O on mainland plates
PLATE_RE = re.compile(
    rf"^[{_PROVINCES}][{_LETTER}]"
    rf"(?:[{_LETTER}0-9]{{5}}"  # ordinary: 浙K12345, 浙KA1234
    rf"|[DF][{_LETTER}0-9][0-9]{{4}}"  # new-energy small car: 浙KD12345
    rf"|[0-9]{{5}}[DF])$"  # new-energy large vehicle: 浙K12345D
)


class InvalidPlate(ValueError):
    pass


def normalize_plate(raw: str) -> str:
    """Upper-case, drop spaces and the separator dot; raise InvalidPlate unless a mainland plate."""
    plate = raw.strip().upper().replace(" ", "").replace("·", "").replace("-", "")
    if not PLATE_RE.fullmatch(plate):
        raise InvalidPlate("not a mainland plate")
    return plate


# --- money ----------------------------------------------------------------------------------------


def fee_fen(start: datetime, end: datetime, rate_fen_per_30min: int) -> int:
    """The fee for parking from start to end: every started 30 minutes costs the rate."""
    if rate_fen_per_30min < 0:
        raise ValueError("rate must not be negative")
    if end <= start:
        return 0
    units = -((start - end) // BILLING_UNIT)  # ceiling division on timedeltas, exact to the microsecond
    return units * rate_fen_per_30min


def overstay_fen(booked_end: datetime, exited_at: datetime, rate_fen_per_30min: int) -> int:
    """Staying past the booked end costs every started 30 minutes after it."""
    return fee_fen(booked_end, exited_at, rate_fen_per_30min)


@dataclass(frozen=True)
class Split:
    owner_fen: int
    property_fen: int
    platform_fen: int


def split_fee(total_fen: int, owner_share_bp: int, property_share_bp: int) -> Split:
    """Divide a fee between owner, property and platform; the platform takes the rounding remainder."""
    if not (0 <= owner_share_bp and 0 <= property_share_bp and owner_share_bp + property_share_bp <= BASIS_POINTS):
        raise ValueError("shares must be non-negative and add up to at most 100%")
    owner = total_fen * owner_share_bp // BASIS_POINTS
    prop = total_fen * property_share_bp // BASIS_POINTS
    return Split(owner, prop, total_fen - owner - prop)


def refund_fen(
    paid_fen: int,
    *,
    now: datetime,
    starts_at: datetime,
    by_owner_or_staff: bool,
    full_refund_before: timedelta,
    late_refund_pct: int,
) -> int:
    """What a cancellation gives back: all of it when the owner (or staff) cancels or the booker cancels
    early enough; late_refund_pct of it when the booker cancels later but before the start; nothing after."""
    if by_owner_or_staff or starts_at - now >= full_refund_before:
        return paid_fen
    if now < starts_at:
        return paid_fen * late_refund_pct // 100
    return 0


# --- windows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def weekly_duration(local_start: time, local_end: time) -> timedelta:
    """A weekly window runs from local_start to local_end; an end at or before the start is the next day
    (22:00-07:00 is overnight; 00:00-00:00 is the whole day)."""
    day = date(2000, 1, 1)
    start = datetime.combine(day, local_start)
    end = datetime.combine(day, local_end)
    if end <= start:
        end += timedelta(days=1)
    return end - start


def expand_weekly(
    weekdays: frozenset[int], local_start: time, local_end: time, first_day: date, last_day: date
) -> list[Interval]:
    """The concrete occurrences of a weekly window whose local start day falls in [first_day, last_day].

    Weekdays are ISO (1 = Monday). Each occurrence is computed in Asia/Shanghai wall time and turned
    into an aware instant, so month ends and year ends need no special case.
    """
    if not weekdays or not weekdays <= set(range(1, 8)):
        raise ValueError("weekdays must be a non-empty subset of 1..7")
    length = weekly_duration(local_start, local_end)
    out: list[Interval] = []
    day = first_day
    while day <= last_day:
        if day.isoweekday() in weekdays:
            start = datetime.combine(day, local_start, tzinfo=COMMUNITY_TZ)
            end_local = datetime.combine(day, local_start) + length
            end = end_local.replace(tzinfo=COMMUNITY_TZ)
            out.append(Interval(start, end))
        day += timedelta(days=1)
    return out


def local_today(now: datetime) -> date:
    return now.astimezone(COMMUNITY_TZ).date()


# --- bookings -------------------------------------------------------------------------------------


class RangeProblem(ValueError):
    """A requested range breaks a rule; `code` names which."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def check_booking_range(start: datetime, end: datetime, *, now: datetime, min_minutes: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise RangeProblem("naive-time")
    if end <= start:
        raise RangeProblem("end-before-start")
    # A minute of slack for clocks and network; anything older is a booking in the past.
    if start < now - timedelta(minutes=1):
        raise RangeProblem("in-the-past")
    if end - start < timedelta(minutes=min_minutes):
        raise RangeProblem("too-short")


def check_window_range(start: datetime, end: datetime, *, now: datetime, min_minutes: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise RangeProblem("naive-time")
    if end <= start:
        raise RangeProblem("end-before-start")
    if end <= now:
        raise RangeProblem("in-the-past")
    if end - start < timedelta(minutes=min_minutes):
        raise RangeProblem("too-short")


def blocked_until(end: datetime, buffer_minutes: int) -> datetime:
    """A booking keeps its spot until its end plus the window's buffer (time to leave and tidy)."""
    return end + timedelta(minutes=buffer_minutes)


def may_enter(starts_at: datetime, ends_at: datetime, at: datetime, grace: timedelta) -> bool:
    """A booked car may enter from `grace` before its start until its end."""
    return starts_at - grace <= at < ends_at
