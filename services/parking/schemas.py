"""API models: what the routes accept and return (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.kit.inputs import ClientId, ClockTime, Day, RequestBody, Timestamp, Uuid
from services.parking import domain
from services.parking.domain import BarrierDecision, SpotKind, SpotSize, WindowKind

Fen = Annotated[int, Field(ge=0, le=100_000_00, description="Amount in fen (分)")]
Plate = Annotated[str, Field(min_length=7, max_length=12, description="Mainland plate, e.g. 浙K12345 or 浙KD12345")]


def _plate(value: str) -> str:
    try:
        return domain.normalize_plate(value)
    except domain.InvalidPlate:
        # The message never echoes the plate: problem bodies may end up in client logs.
        raise ValueError("not a mainland licence plate") from None


class CommunitySettingsFields(BaseModel):
    """Per-community parking policy (社区停车规则)."""

    owner_share_bp: Annotated[int, Field(ge=0, le=10_000, description="Owner's share in basis points")] = 7000
    property_share_bp: Annotated[int, Field(ge=0, le=10_000, description="Property's share in basis points")] = 2000
    public_rate_fen_per_30min: Annotated[int, Field(ge=0, le=100_000)] = 300
    hold_minutes: Annotated[int, Field(ge=1, le=240)] = 15
    min_window_minutes: Annotated[int, Field(ge=30, le=1440)] = 60
    min_booking_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    full_refund_before_minutes: Annotated[int, Field(ge=0, le=10_080)] = 120
    late_cancel_refund_pct: Annotated[int, Field(ge=0, le=100)] = 50
    entry_grace_minutes: Annotated[int, Field(ge=0, le=240)] = 15
    walk_in_block_minutes: Annotated[int, Field(ge=30, le=1440)] = 240


class CommunitySettingsBody(RequestBody, CommunitySettingsFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "owner_share_bp": 7000,
                    "property_share_bp": 2000,
                    "public_rate_fen_per_30min": 300,
                    "hold_minutes": 15,
                    "min_window_minutes": 60,
                    "min_booking_minutes": 30,
                    "full_refund_before_minutes": 120,
                    "late_cancel_refund_pct": 50,
                    "entry_grace_minutes": 15,
                    "walk_in_block_minutes": 240,
                }
            ]
        }
    )


class CommunitySettingsPublic(CommunitySettingsFields):
    model_config = ConfigDict(from_attributes=True)
    community: str
    platform_share_bp: int


class SpotCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "private", "code": "B1-023", "location": "地下一层B区", "size": "standard"}]}
    )
    kind: SpotKind = "private"
    code: Annotated[str, Field(min_length=1, max_length=40, description="The number painted on the spot")]
    location: Annotated[str, Field(min_length=1, max_length=200)]
    size: SpotSize = "standard"
    has_charger: bool = False


class SpotVerify(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"approve": True}]})
    approve: bool


class SpotPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: str
    owner_id: str | None
    code: str
    location: str
    size: str
    has_charger: bool
    status: str
    created_at: datetime


class WindowCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "one_off",
                    "starts_at": "2026-03-01T08:00:00+08:00",
                    "ends_at": "2026-03-01T18:00:00+08:00",
                    "price_fen_per_30min": 300,
                },
                {
                    "kind": "weekly",
                    "weekdays": [1, 2, 3, 4, 5],
                    "local_start": "08:00:00",
                    "local_end": "18:00:00",
                    "price_fen_per_30min": 300,
                    "buffer_minutes": 10,
                },
            ]
        }
    )
    kind: WindowKind
    starts_at: Timestamp | None = Field(None, description="one_off: start")
    ends_at: Timestamp | None = Field(None, description="one_off: end (exclusive)")
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] | None = Field(
        None, min_length=1, max_length=7, description="weekly: ISO weekdays, 1 = Monday"
    )
    local_start: ClockTime | None = Field(None, description="weekly: local (Asia/Shanghai) start time")
    local_end: ClockTime | None = Field(None, description="weekly: local end time; at or before the start means next day")
    valid_from: Day | None = Field(None, description="weekly: first local date (default today)")
    valid_until: Day | None = Field(None, description="weekly: last local date (default open-ended)")
    price_fen_per_30min: Annotated[int, Field(ge=0, le=100_000)]
    buffer_minutes: Annotated[int, Field(ge=0, le=240)] = 0


class WindowShrink(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "2026-03-01T17:00:00+08:00"}]}
    )
    starts_at: Timestamp
    ends_at: Timestamp


class WindowPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    spot_id: uuid.UUID
    kind: str
    weekdays: list[int] | None
    local_start: ClockTime | None
    local_end: ClockTime | None
    valid_from: date | None
    valid_until: date | None
    starts_at: datetime | None
    ends_at: datetime | None
    price_fen_per_30min: int
    buffer_minutes: int
    status: str

    @field_validator("weekdays", mode="before")
    @classmethod
    def _days(cls, value: object) -> object:
        return [int(c) for c in value] if isinstance(value, str) else value


class OccurrencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    window_id: uuid.UUID
    spot_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    price_fen_per_30min: int
    buffer_minutes: int
    status: str


class FreeSpot(BaseModel):
    spot_id: uuid.UUID
    code: str
    location: str
    kind: str
    size: str
    has_charger: bool
    occurrence_id: uuid.UUID
    price_fen_per_30min: int
    fee_fen: int


class BookingCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "spot_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                    "starts_at": "2026-03-01T09:00:00+08:00",
                    "ends_at": "2026-03-01T11:00:00+08:00",
                    "plate": "浙K12345",
                }
            ]
        }
    )
    spot_id: Uuid
    starts_at: Timestamp
    ends_at: Timestamp
    plate: Plate
    visitor: bool = Field(False, description="True when a resident books for a visitor's car")

    _normalize = field_validator("plate")(lambda cls, v: _plate(v))


# Whose bookings a listing shows: the caller's as booker, those of the caller's spots, or (staff) all.
BookingsOf = Literal["booker", "owner", "all"]


class BookingPay(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"method": "fake-wallet"}]})
    method: Annotated[
        str,
        Field(
            min_length=1,
            max_length=40,
            description="Payment method; the fake provider declines 'fake-decline'",
        ),
    ] = "fake-wallet"


class BookingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    spot_id: uuid.UUID
    occurrence_id: uuid.UUID | None
    kind: str
    booker_id: str | None
    owner_id: str | None
    plate: str
    visitor: bool
    starts_at: datetime
    ends_at: datetime
    status: str
    hold_expires_at: datetime | None
    price_fen_per_30min: int
    fee_fen: int
    paid_fen: int
    refunded_fen: int
    overstay_fen: int
    owner_share_fen: int
    entered_at: datetime | None
    exited_at: datetime | None
    created_at: datetime


class GateDeviceCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "gate-north-1", "name": "北门道闸"}]})
    id: Annotated[ClientId, Field(description="The device's gateway client id: its token subject")]
    name: Annotated[str, Field(min_length=1, max_length=100)]


class GateDevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    active: bool


class GatePass(RequestBody):
    """A plate read by the gate camera."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"plate": "浙K12345"}, {"plate": "浙K12345", "at": "2026-03-01T09:01:00+08:00"}]}
    )
    plate: Plate
    at: Timestamp | None = Field(None, description="When the camera read the plate (default: now)")

    _normalize = field_validator("plate")(lambda cls, v: _plate(v))


class GateDecision(BaseModel):
    event_id: uuid.UUID
    decision: BarrierDecision
    reason: str
    booking_id: uuid.UUID | None = None
    spot_id: uuid.UUID | None = None
    charged_fen: int = 0
    overstay_fen: int = 0
    visitor_pass_id: str | None = Field(
        None, description="The visitor pass the car came in (or leaves) on, reason `visitor-pass`"
    )


class PlateCorrection(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"plate": "浙KD12345"}]})
    plate: Plate

    _normalize = field_validator("plate")(lambda cls, v: _plate(v))


class GateEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    device_id: str
    direction: str
    plate: str
    corrected_plate: str | None
    at: datetime
    decision: str
    reason: str
    booking_id: uuid.UUID | None
    charged_fen: int


class EarningsMonth(BaseModel):
    month: str
    bookings: int
    fee_fen: int
    owner_share_fen: int


class Earnings(BaseModel):
    owner_id: str
    total_owner_share_fen: int
    completed_bookings: int
    months: list[EarningsMonth]


class OccupancyHour(BaseModel):
    hour_start: datetime
    booked_spots: int


class Occupancy(BaseModel):
    at: datetime
    spots: int
    occupied_now: int
    booked_now: int
    hours: list[OccupancyHour]
