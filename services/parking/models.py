"""Parking's tables. Ranges are half-open tstzrange columns generated from start/end columns, so the
exclusion constraints (btree_gist) see exactly what the code writes. Constraints over an enumerated set
read the set from `domain`, so the model, the constraint and the queries share one list."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    CursorResult,
    DateTime,
    Index,
    Result,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint
from sqlmodel import Field

from services.kit.db import model_base, table_of
from services.parking.domain import (
    BLOCKING_STATUSES,
    GATE_DIRECTIONS,
    SPOT_KINDS,
    SPOT_SIZES,
    SPOT_STATUSES,
    WINDOW_KINDS,
    BarrierDecision,
    BookingKind,
    BookingStatus,
    CancelledBy,
    GateDirection,
    PaymentKind,
    SpotKind,
    SpotSize,
    SpotStatus,
    WindowKind,
    WindowStatus,
)

if TYPE_CHECKING:
    from sqlmodel import SQLModel

    class Base(SQLModel):
        pass
else:
    # Parking's own registry and metadata (the kit keeps each service's tables apart).
    Base = model_base("ParkingModel")


def _tz(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kw)


def _text(**kw: Any) -> Any:
    """A text column holding one of domain's enumerated sets (typed as its Literal)."""
    return Field(sa_type=Text, **kw)


def _quoted(value: str) -> str:
    if "'" in value:
        raise ValueError(f"an enumerated value must not hold a quote: {value!r}")
    return f"'{value}'"


def one_of(column: str, values: Iterable[str]) -> str:
    """The SQL condition `column IN ('a', 'b')` over one of domain's enumerated sets."""
    return f"{column} IN ({', '.join(_quoted(v) for v in values)})"


# The bookings that hold their spot, as SQL: the exclusion constraint and the queries that look for a
# free spot use this one condition (the queries name the table `b`).
BLOCKING = one_of("status", BLOCKING_STATUSES)
B_BLOCKING = one_of("b.status", BLOCKING_STATUSES)
OPEN: WindowStatus = "open"  # the status of an offered window and occurrence


class CommunitySettings(Base, table=True):
    """Per-community policy, edited by property_admin; missing rows mean the defaults in schemas."""

    __tablename__ = "community_settings"
    community: str = Field(primary_key=True)
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
    updated_at: datetime = _tz()


class Spot(Base, table=True):
    __tablename__ = "spots"
    __table_args__ = (
        UniqueConstraint("community", "code"),
        CheckConstraint(one_of("kind", SPOT_KINDS), name="kind"),
        CheckConstraint("kind = 'public' OR owner_id IS NOT NULL", name="private_has_owner"),
        CheckConstraint(one_of("size", SPOT_SIZES), name="size"),
        CheckConstraint(one_of("status", SPOT_STATUSES), name="status"),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(index=True)
    kind: SpotKind = _text()
    owner_id: str | None = Field(default=None, index=True)
    code: str
    location: str
    size: SpotSize = _text()
    has_charger: bool
    status: SpotStatus = _text()
    verified_by: str | None = None
    created_at: datetime = _tz()


class AvailabilityWindow(Base, table=True):
    """What the owner published: one-off (starts_at/ends_at) or weekly (weekdays + local times)."""

    __tablename__ = "windows"
    __table_args__ = (
        CheckConstraint(one_of("kind", WINDOW_KINDS), name="kind"),
        CheckConstraint("price_fen_per_30min >= 0", name="price"),
        CheckConstraint("buffer_minutes >= 0", name="buffer"),
        # Serves the spot's window list in its keyset order (and every look-up by spot).
        Index("ix_windows_spot_id_created_at_id", "spot_id", "created_at", "id"),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str
    spot_id: uuid.UUID = Field(foreign_key="spots.id")
    kind: WindowKind = _text()
    weekdays: str | None = None  # ISO days as digits, e.g. "12345"
    local_start: time | None = None
    local_end: time | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    starts_at: datetime | None = _tz(nullable=True, default=None)
    ends_at: datetime | None = _tz(nullable=True, default=None)
    price_fen_per_30min: int
    buffer_minutes: int
    status: WindowStatus = _text()
    expanded_until: date | None = None
    created_at: datetime = _tz()


class WindowOccurrence(Base, table=True):
    """One concrete stretch of availability; bookings lock this row and must lie inside it."""

    __tablename__ = "window_occurrences"
    __table_args__ = (
        UniqueConstraint("window_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="range"),
        # One spot is never offered twice for the same time: overlapping windows are refused.
        ExcludeConstraint(
            ("spot_id", "="),
            ("period", "&&"),
            where=text(f"status = {_quoted(OPEN)}"),
            name="ex_window_occurrences_spot_period",
            using="gist",
        ),
        Index("ix_window_occurrences_community_period", "community", "period", postgresql_using="gist"),
    )
    id: uuid.UUID = Field(primary_key=True)
    window_id: uuid.UUID = Field(foreign_key="windows.id", index=True)
    community: str
    spot_id: uuid.UUID = Field(foreign_key="spots.id")
    starts_at: datetime = _tz()
    ends_at: datetime = _tz()
    period: Any = Field(
        default=None,
        sa_column=Column(TSTZRANGE, Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True)),
    )
    price_fen_per_30min: int
    buffer_minutes: int
    status: WindowStatus = _text()


class Booking(Base, table=True):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="range"),
        CheckConstraint("block_ends_at >= ends_at", name="block"),
        CheckConstraint(one_of("status", BookingStatus), name="status"),
        CheckConstraint("fee_fen >= 0 AND paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen", name="money"),
        # The rule that must hold: no two bookings holding one spot overlap (half-open, so back-to-back fits).
        ExcludeConstraint(
            ("spot_id", "="),
            ("blocked", "&&"),
            where=text(BLOCKING),
            name="ex_bookings_spot_blocked",
            using="gist",
        ),
        Index("ix_bookings_plate_status", "community", "plate", "status"),
        Index("ix_bookings_held_expiry", "hold_expires_at", postgresql_where=text(f"status = {_quoted(BookingStatus.held)}")),
        Index(
            "ix_bookings_start_reminder_due",
            "starts_at",
            postgresql_where=text(f"status = {_quoted(BookingStatus.confirmed)} AND start_reminded_at IS NULL"),
        ),
        Index(
            "ix_bookings_overstay_due",
            "ends_at",
            postgresql_where=text(f"status = {_quoted(BookingStatus.active)} AND overstay_reminded_at IS NULL"),
        ),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str
    spot_id: uuid.UUID = Field(foreign_key="spots.id")
    occurrence_id: uuid.UUID | None = Field(default=None, foreign_key="window_occurrences.id", index=True)
    kind: BookingKind = _text()
    booker_id: str | None = Field(default=None, index=True)
    owner_id: str | None = Field(default=None, index=True)
    plate: str
    visitor: bool = False
    starts_at: datetime = _tz()
    ends_at: datetime = _tz()
    block_ends_at: datetime = _tz()
    blocked: Any = Field(
        default=None,
        sa_column=Column(TSTZRANGE, Computed("tstzrange(starts_at, block_ends_at, '[)')", persisted=True)),
    )
    status: str = Field(sa_column=Column(Text, nullable=False))
    hold_expires_at: datetime | None = _tz(nullable=True, default=None)
    price_fen_per_30min: int
    fee_fen: int
    paid_fen: int = 0
    refunded_fen: int = 0
    overstay_fen: int = 0
    owner_share_fen: int = 0
    property_share_fen: int = 0
    platform_share_fen: int = 0
    entered_at: datetime | None = _tz(nullable=True, default=None)
    exited_at: datetime | None = _tz(nullable=True, default=None)
    cancelled_by: CancelledBy | None = _text(default=None, nullable=True)
    created_at: datetime = _tz()
    updated_at: datetime = _tz()
    # When the `remind-bookings` job told the booker: set in the transaction that publishes the
    # event, so each is told once across replicas and runs.
    start_reminded_at: datetime | None = _tz(nullable=True, default=None)
    overstay_reminded_at: datetime | None = _tz(nullable=True, default=None)


class Payment(Base, table=True):
    __tablename__ = "payments"
    id: uuid.UUID = Field(primary_key=True)
    community: str
    booking_id: uuid.UUID = Field(foreign_key="bookings.id", index=True)
    kind: PaymentKind = _text()
    amount_fen: int
    provider: str
    provider_ref: str
    created_at: datetime = _tz()


class GateDevice(Base, table=True):
    __tablename__ = "gate_devices"
    # Serves the community's device list in its keyset order.
    __table_args__ = (Index("ix_gate_devices_community_id", "community", "id"),)
    id: str = Field(primary_key=True)  # the device's token subject
    community: str
    name: str
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime = _tz()


class GateEvent(Base, table=True):
    __tablename__ = "gate_events"
    __table_args__ = (CheckConstraint(one_of("direction", GATE_DIRECTIONS), name="direction"),)
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(index=True)
    device_id: str = Field(foreign_key="gate_devices.id")
    direction: GateDirection = _text()
    plate: str
    corrected_plate: str | None = None
    corrected_by: str | None = None
    at: datetime = _tz()
    decision: BarrierDecision = _text()
    reason: str
    booking_id: uuid.UUID | None = Field(default=None, foreign_key="bookings.id")
    # The visitor pass a car came in on without a booking (security's pass id).
    visitor_pass_id: str | None = None
    charged_fen: int = 0
    created_at: datetime = _tz()


class VisitorPlate(Base, table=True):
    """A visitor pass with a plate (security's `pass.car_allowed`): the gate lets the car in within
    the window, by the booking's own matching, up to `max_entries` entries (None: any); a revoked pass
    lets nothing in. `entries_used` moves by a conditional UPDATE, so two gates cannot overspend it."""

    __tablename__ = "visitor_plates"
    __table_args__ = (
        Index("ix_visitor_plates_plate", "community", "plate", "valid_until"),
        CheckConstraint("max_entries IS NULL OR entries_used <= max_entries", name="entries"),
    )
    pass_id: str = Field(primary_key=True)
    community: str
    plate: str
    valid_from: datetime = _tz()
    valid_until: datetime = _tz()
    max_entries: int | None = None
    entries_used: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    revoked_at: datetime | None = _tz(nullable=True, default=None)


# Core tables for building statements: the classes' attributes are typed as their Python values,
# the tables' columns as SQL expressions.
SPOTS: Table = table_of(Spot)
WINDOWS: Table = table_of(AvailabilityWindow)
OCCURRENCES: Table = table_of(WindowOccurrence)
BOOKINGS: Table = table_of(Booking)
GATE_DEVICES: Table = table_of(GateDevice)
GATE_EVENTS: Table = table_of(GateEvent)
VISITOR_PLATES: Table = table_of(VisitorPlate)


def changed_rows(result: Result[Any]) -> int:
    """How many rows an INSERT or UPDATE wrote."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
