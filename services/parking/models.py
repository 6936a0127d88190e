"""Parking's tables. Ranges are half-open tstzrange columns generated from start/end columns, so the
exclusion constraints (btree_gist) see exactly what the code writes."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Column, Computed, DateTime, Index, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import TSTZRANGE, ExcludeConstraint
from sqlmodel import Field

from services.kit.db import model_base

if TYPE_CHECKING:
    from sqlmodel import SQLModel

    class Base(SQLModel):
        pass
else:
    # Parking's own registry and metadata (the kit keeps each service's tables apart).
    Base = model_base("ParkingModel")


def _tz(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kw)


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
        CheckConstraint("kind IN ('private', 'public')", name="kind"),
        CheckConstraint("kind = 'public' OR owner_id IS NOT NULL", name="private_has_owner"),
        CheckConstraint("size IN ('compact', 'standard', 'large')", name="size"),
        CheckConstraint("status IN ('pending', 'verified', 'rejected')", name="status"),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(index=True)
    kind: str  # private | public
    owner_id: str | None = Field(default=None, index=True)
    code: str
    location: str
    size: str  # compact | standard | large
    has_charger: bool
    status: str  # pending | verified | rejected
    verified_by: str | None = None
    created_at: datetime = _tz()


class AvailabilityWindow(Base, table=True):
    """What the owner published: one-off (starts_at/ends_at) or weekly (weekdays + local times)."""

    __tablename__ = "windows"
    __table_args__ = (
        CheckConstraint("kind IN ('one_off', 'weekly')", name="kind"),
        CheckConstraint("price_fen_per_30min >= 0", name="price"),
        CheckConstraint("buffer_minutes >= 0", name="buffer"),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str
    spot_id: uuid.UUID = Field(foreign_key="spots.id", index=True)
    kind: str  # one_off | weekly
    weekdays: str | None = None  # ISO days as digits, e.g. "12345"
    local_start: time | None = None
    local_end: time | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    starts_at: datetime | None = _tz(nullable=True, default=None)
    ends_at: datetime | None = _tz(nullable=True, default=None)
    price_fen_per_30min: int
    buffer_minutes: int
    status: str  # open | withdrawn
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
            where=text("status = 'open'"),
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
    status: str  # open | withdrawn


class Booking(Base, table=True):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="range"),
        CheckConstraint("block_ends_at >= ends_at", name="block"),
        CheckConstraint("status IN ('held', 'confirmed', 'active', 'completed', 'cancelled', 'expired')", name="status"),
        CheckConstraint("fee_fen >= 0 AND paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen", name="money"),
        # The rule that must hold: no two bookings holding one spot overlap (half-open, so back-to-back fits).
        ExcludeConstraint(
            ("spot_id", "="),
            ("blocked", "&&"),
            where=text("status IN ('held', 'confirmed', 'active')"),
            name="ex_bookings_spot_blocked",
            using="gist",
        ),
        Index("ix_bookings_plate_status", "community", "plate", "status"),
        Index("ix_bookings_held_expiry", "hold_expires_at", postgresql_where=text("status = 'held'")),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str
    spot_id: uuid.UUID = Field(foreign_key="spots.id")
    occurrence_id: uuid.UUID | None = Field(default=None, foreign_key="window_occurrences.id", index=True)
    kind: str  # booking | walk_in
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
    cancelled_by: str | None = None
    created_at: datetime = _tz()
    updated_at: datetime = _tz()


class Payment(Base, table=True):
    __tablename__ = "payments"
    id: uuid.UUID = Field(primary_key=True)
    community: str
    booking_id: uuid.UUID = Field(foreign_key="bookings.id", index=True)
    kind: str  # charge | refund
    amount_fen: int
    provider: str
    provider_ref: str
    created_at: datetime = _tz()


class GateDevice(Base, table=True):
    __tablename__ = "gate_devices"
    id: str = Field(primary_key=True)  # the device's token subject
    community: str
    name: str
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime = _tz()


class GateEvent(Base, table=True):
    __tablename__ = "gate_events"
    __table_args__ = (CheckConstraint("direction IN ('entry', 'exit')", name="direction"),)
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(index=True)
    device_id: str = Field(foreign_key="gate_devices.id")
    direction: str  # entry | exit
    plate: str
    corrected_plate: str | None = None
    corrected_by: str | None = None
    at: datetime = _tz()
    decision: str  # open | refused
    reason: str
    booking_id: uuid.UUID | None = Field(default=None, foreign_key="bookings.id")
    charged_fen: int = 0
    created_at: datetime = _tz()
