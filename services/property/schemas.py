"""API models: what the routes accept and return (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.property.domain import Category, PaymentMethod, Priority


def _uuid_text(value: str) -> str:
    return str(uuid.UUID(value))


Id = Annotated[str, AfterValidator(_uuid_text), Field(description="A UUID")]
Name = Annotated[str, Field(min_length=1, max_length=60)]
Phone = Annotated[str, Field(pattern=r"^1\d{10}$", description="Mainland mobile number")]
ResidentRole = Literal["resident", "elder", "volunteer"]
StaffRole = Literal["steward", "property_admin", "community_worker"]


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- registry -------------------------------------------------------------------------------------


class BuildingCreate(BaseModel):
    id: Id | None = Field(None, description="Client-chosen id (the demo uses fixed ids); a new UUID otherwise")
    code: Annotated[str, Field(min_length=1, max_length=20)]
    name: Name


class BuildingPublic(Public):
    id: str
    code: str
    name: str
    steward_id: str | None
    backup_steward_id: str | None


Area = Annotated[int, Field(ge=0, le=100_000_000, description="Exclusive area (专有部分面积) in hundredths of a square metre")]
BuyerKey = Annotated[
    str | None, Field(min_length=1, max_length=64, description="Units with the same buyer key count as one owner in votes")
]


class HouseholdCreate(BaseModel):
    id: Id | None = None
    building_id: Id
    unit: Annotated[str, Field(min_length=1, max_length=20)]
    exclusive_area: Area = 0
    sold: Annotated[bool, Field(description="False while the developer has not sold or delivered the unit")] = True
    buyer_key: BuyerKey = None


class HouseholdRollUpdate(BaseModel):
    """What an owners' vote counts of a unit; fields left out keep their values."""

    model_config = ConfigDict(extra="forbid")
    exclusive_area: Area | None = None
    sold: bool | None = None
    buyer_key: BuyerKey = None


class HouseholdPublic(Public):
    id: str
    building_id: str
    unit: str
    exclusive_area: int
    sold: bool
    buyer_key: str | None


class ResidentCreate(BaseModel):
    id: Id | None = None
    household_id: Id
    name: Name
    phone: Phone
    roles: Annotated[list[ResidentRole], Field(min_length=1, max_length=3)] = ["resident"]
    owner: Annotated[bool, Field(description="An owner (业主) of the household; tenants are not")] = False

    @model_validator(mode="after")
    def _is_resident(self) -> ResidentCreate:
        if "resident" not in self.roles:
            self.roles = ["resident", *self.roles]
        return self


class ResidentPublic(Public):
    id: str
    household_id: str
    name: str
    phone: str
    roles: list[str]
    owner: bool


class StaffCreate(BaseModel):
    id: Id | None = None
    name: Name
    username: Annotated[str, Field(pattern=r"^[a-z0-9._-]{3,40}$")]
    roles: Annotated[list[StaffRole], Field(min_length=1, max_length=3)]
    buildings: Annotated[list[Id], Field(max_length=50, description="Buildings this steward covers")] = []
    backup_for: Annotated[list[Id], Field(max_length=50, description="Buildings this steward backs up")] = []


class StaffPublic(Public):
    id: str
    name: str
    username: str
    roles: list[str]


class ShiftIn(BaseModel):
    weekday: Annotated[int, Field(ge=0, le=6, description="0 = Monday, local time")]
    start_minute: Annotated[int, Field(ge=0, le=1439)]
    end_minute: Annotated[int, Field(ge=1, le=1440)]

    @model_validator(mode="after")
    def _ordered(self) -> ShiftIn:
        if self.end_minute <= self.start_minute:
            raise ValueError("end_minute must be after start_minute")
        return self


class RosterIn(BaseModel):
    shifts: Annotated[list[ShiftIn], Field(max_length=100)]


class RosterPublic(Public):
    staff_id: str
    shifts: list[ShiftIn]


class CatalogueItemCreate(BaseModel):
    code: Annotated[str, Field(pattern=r"^[a-z0-9_-]{2,40}$")]
    name: Name
    price_fen: Annotated[int | None, Field(gt=0, le=10_000_000, description="None: quoted on site")] = None


class CatalogueItemPublic(Public):
    code: str
    name: str
    price_fen: int | None


class SlaPolicyIn(BaseModel):
    response_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 30)]
    resolution_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 90)]

    @model_validator(mode="after")
    def _ordered(self) -> SlaPolicyIn:
        if self.resolution_minutes < self.response_minutes:
            raise ValueError("resolution_minutes must not be shorter than response_minutes")
        return self


class SlaPolicyPublic(BaseModel):
    category: Category
    priority: Priority
    response_minutes: int
    resolution_minutes: int


# --- tickets --------------------------------------------------------------------------------------


class TicketCreate(BaseModel):
    category: Category
    service_code: Annotated[str | None, Field(pattern=r"^[a-z0-9_-]{2,40}$", description="Required for category `service`")] = (
        None
    )
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    priority: Priority = Priority.normal
    preferred_time: datetime | None = None
    photo_ids: Annotated[list[Id], Field(max_length=9)] = []

    @model_validator(mode="after")
    def _service_code(self) -> TicketCreate:
        if (self.category == Category.service) != (self.service_code is not None):
            raise ValueError("service_code is required for category service, and only for it")
        if self.preferred_time is not None and self.preferred_time.tzinfo is None:
            raise ValueError("preferred_time needs a UTC offset")
        return self


class TicketPublic(Public):
    id: str
    category: str
    service_code: str | None
    quantity: int
    description: str
    priority: str
    preferred_time: datetime | None
    status: str
    resident_id: str
    household_id: str
    building_id: str
    assignee_id: str | None
    quote_fen: int | None
    quote_approved_at: datetime | None
    payment_status: str
    created_at: datetime
    response_due_at: datetime
    resolution_due_at: datetime
    due_at: datetime
    responded_at: datetime | None
    completed_at: datetime | None
    response_breached_at: datetime | None
    resolution_breached_at: datetime | None
    rating_overall: int | None
    rating_speed: int | None
    rating_comment: str | None
    hurry_count: int
    follow_up_note: str | None
    redemption_id: str | None
    photo_ids: list[str] = []


class StepPublic(Public):
    actor_id: str
    role: str
    action: str
    from_status: str | None
    to_status: str
    at: datetime
    note: str | None


class Reason(BaseModel):
    reason: Annotated[str | None, Field(max_length=500)] = None


class QuoteIn(BaseModel):
    amount_fen: Annotated[int, Field(gt=0, le=10_000_000)]
    note: Annotated[str | None, Field(max_length=500)] = None


class PauseIn(BaseModel):
    waiting_on: Literal["resident", "parts"]
    reason: Annotated[str | None, Field(max_length=500)] = None


class HandOverIn(BaseModel):
    to_staff_id: Id
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class RateIn(BaseModel):
    overall: Annotated[int, Field(ge=1, le=5)]
    speed: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str | None, Field(max_length=500)] = None


class FollowUpIn(BaseModel):
    note: Annotated[str, Field(min_length=1, max_length=1000)]


class PaymentIn(BaseModel):
    method: PaymentMethod


class PaymentPublic(Public):
    id: str
    ticket_id: str
    method: str
    amount_fen: int
    points: int | None
    status: str
    reason: str | None


class PhotoPublic(Public):
    id: str
    media_type: str
    size_bytes: int


class StewardFigures(BaseModel):
    steward_id: str
    month: str
    tickets: int = Field(description="Tickets assigned to the steward that were submitted in the month")
    completed: int
    on_time: int
    on_time_rate: float | None = Field(description="on_time / completed; a ratio, not money or time")
    rated: int
    average_rating: float | None
