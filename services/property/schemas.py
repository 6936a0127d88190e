"""API models: what the routes accept and return (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.kit.inputs import FromText, RequestBody, Timestamp
from services.property.domain import Category, PaymentMethod, Priority


def _uuid_text(value: str) -> str:
    return str(uuid.UUID(value))


Id = Annotated[str, AfterValidator(_uuid_text), Field(description="A UUID")]
Name = Annotated[str, Field(min_length=1, max_length=60)]
Phone = Annotated[str, Field(pattern=r"^1\d{10}$", description="Mainland mobile number")]
ResidentRole = Literal["resident", "elder", "volunteer"]
StaffRole = Literal["steward", "property_admin", "community_worker", "security_guard"]


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- registry -------------------------------------------------------------------------------------


class BuildingCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "3", "name": "3栋"}]})
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


class HouseholdCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"building_id": "4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b", "unit": "2-501"}]}
    )
    id: Id | None = None
    building_id: Id
    unit: Annotated[str, Field(min_length=1, max_length=20)]
    exclusive_area: Area = 0
    sold: Annotated[bool, Field(description="False while the developer has not sold or delivered the unit")] = True
    buyer_key: BuyerKey = None


class HouseholdRollUpdate(RequestBody):
    """What an owners' vote counts of a unit; fields left out keep their values."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"exclusive_area": 8950, "sold": True, "buyer_key": "buyer-0042"}]})
    exclusive_area: Area | None = None
    sold: bool | None = None
    buyer_key: BuyerKey = None


class ResidentOwnerUpdate(RequestBody):
    """Whether the resident owns their household (业主) or not (a tenant)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"owner": True}]})
    owner: bool


class HouseholdPublic(Public):
    id: str
    building_id: str
    unit: str
    exclusive_area: int
    sold: bool
    buyer_key: str | None


def _resident_only() -> list[ResidentRole]:
    return ["resident"]


class ResidentCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "household_id": "4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b",
                    "name": "王秀英",
                    "phone": "13800000001",
                    "roles": ["resident", "elder"],
                }
            ]
        }
    )
    id: Id | None = None
    household_id: Id
    name: Name
    phone: Phone
    roles: Annotated[list[ResidentRole], Field(min_length=1, max_length=3)] = Field(default_factory=_resident_only)
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


class StaffCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "李管家",
                    "username": "steward.li",
                    "roles": ["steward"],
                    "buildings": ["4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b"],
                }
            ]
        }
    )
    id: Id | None = None
    name: Name
    username: Annotated[str, Field(pattern=r"^[a-z0-9._-]{3,40}$")]
    roles: Annotated[list[StaffRole], Field(min_length=1, max_length=3)]
    buildings: Annotated[list[Id], Field(max_length=50, description="Buildings this steward covers")] = Field(
        default_factory=list
    )
    backup_for: Annotated[list[Id], Field(max_length=50, description="Buildings this steward backs up")] = Field(
        default_factory=list
    )


class StaffPublic(Public):
    id: str
    name: str
    username: str
    roles: list[str]


class ShiftIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"weekday": 0, "start_minute": 480, "end_minute": 1020}]})
    weekday: Annotated[int, Field(ge=0, le=6, description="0 = Monday, local time")]
    start_minute: Annotated[int, Field(ge=0, le=1439)]
    end_minute: Annotated[int, Field(ge=1, le=1440)]

    @model_validator(mode="after")
    def _ordered(self) -> ShiftIn:
        if self.end_minute <= self.start_minute:
            raise ValueError("end_minute must be after start_minute")
        return self


class RosterIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"shifts": [{"weekday": 0, "start_minute": 480, "end_minute": 1020}]}]}
    )
    shifts: Annotated[list[ShiftIn], Field(max_length=100)]


class RosterPublic(Public):
    staff_id: str
    shifts: list[ShiftIn]


class CatalogueItemCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "aircon-clean", "name": "空调清洗", "price_fen": 8000}]})
    code: Annotated[str, Field(pattern=r"^[a-z0-9_-]{2,40}$")]
    name: Name
    price_fen: Annotated[int | None, Field(gt=0, le=10_000_000, description="None: quoted on site")] = None


class CatalogueItemPublic(Public):
    code: str
    name: str
    price_fen: int | None


class SlaPolicyIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"response_minutes": 30, "resolution_minutes": 1440}]})
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


class TicketCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "category": "repair",
                    "description": "厨房水龙头漏水",
                    "priority": "normal",
                    "preferred_time": "2026-03-02T14:00:00+08:00",
                },
                {"category": "service", "service_code": "aircon-clean", "description": "客厅空调清洗"},
            ]
        }
    )
    category: Annotated[Category, FromText]
    service_code: Annotated[str | None, Field(pattern=r"^[a-z0-9_-]{2,40}$", description="Required for category `service`")] = (
        None
    )
    description: Annotated[str, Field(min_length=1, max_length=2000)]
    priority: Annotated[Priority, FromText] = Priority.normal
    preferred_time: Timestamp | None = None
    photo_ids: Annotated[list[Id], Field(max_length=9)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _service_code(self) -> TicketCreate:
        if (self.category == Category.service) != (self.service_code is not None):
            raise ValueError("service_code is required for category service, and only for it")
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
    # None for a system-filed ticket (`source` `security`: an alarm or a device outage).
    resident_id: str | None
    household_id: str | None
    building_id: str
    source: str
    incident_id: str | None
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


class Reason(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"reason": "已自行修好"}]})
    reason: Annotated[str | None, Field(max_length=500)] = None


class QuoteIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount_fen": 12000, "note": "更换阀芯"}]})
    amount_fen: Annotated[int, Field(gt=0, le=10_000_000)]
    note: Annotated[str | None, Field(max_length=500)] = None


class PauseIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"waiting_on": "parts", "reason": "等待配件到货"}]})
    waiting_on: Literal["resident", "parts"]
    reason: Annotated[str | None, Field(max_length=500)] = None


class HandOverIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"to_staff_id": "4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b", "reason": "轮休交接"}]}
    )
    to_staff_id: Id
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class RateIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overall": 5, "speed": 4, "comment": "师傅很耐心"}]})
    overall: Annotated[int, Field(ge=1, le=5)]
    speed: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str | None, Field(max_length=500)] = None


class FollowUpIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "水龙头又开始滴水了"}]})
    note: Annotated[str, Field(min_length=1, max_length=1000)]


class PaymentIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"method": "points"}]})
    method: Annotated[PaymentMethod, FromText]


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


class PhotoUploadCreate(RequestBody):
    """A photo the client will send straight to the object store: what it is and exactly how large."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"media_type": "image/jpeg", "size_bytes": 482133}]})
    media_type: Literal["image/jpeg", "image/png", "image/webp"]
    size_bytes: int = Field(gt=0, description="Exactly the bytes the client will send; at most photo_max_bytes")


class UploadTarget(BaseModel):
    method: str = Field(description="The HTTP method to send the bytes with (PUT)")
    url: str = Field(description="The presigned URL; it works once per its signature, until expires_at")
    headers: dict[str, str] = Field(description="Send exactly these headers (the store checks them against the signature)")
    expires_at: datetime


class PhotoUploadPublic(BaseModel):
    photo: PhotoPublic
    upload: UploadTarget


class StewardFigures(BaseModel):
    steward_id: str
    month: str
    tickets: int = Field(description="Tickets assigned to the steward that were submitted in the month")
    completed: int
    on_time: int
    on_time_rate: float | None = Field(description="on_time / completed; a ratio, not money or time")
    rated: int
    average_rating: float | None


class SlaGroup(BaseModel):
    key: str | None = Field(description="The building, steward or category id; null: tickets no steward holds")
    label: str | None = Field(description="The building's or steward's name, or the category")
    tickets: int = Field(description="Tickets submitted in the period")
    completed: int
    on_time: int = Field(description="Completed by the resolution deadline (pauses excluded)")
    on_time_rate: float | None = Field(description="on_time / completed; null when none completed")
    response_breached: int
    resolution_breached: int
    open: int = Field(description="Still open now")
    average_rating: float | None


class SlaStats(BaseModel):
    by: Literal["building", "steward", "category"]
    since: str = Field(description="First local day of the period")
    until: str = Field(description="Last local day of the period (included)")
    groups: list[SlaGroup]


class TransitionTable(BaseModel):
    open_statuses: list[str]
    actions: dict[str, dict[str, list[str]]] = Field(description="role -> status -> the actions it may take")
