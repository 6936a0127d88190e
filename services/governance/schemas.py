"""API models (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.governance.domain import CapPeriod, RewardKind, Trigger
from services.kit.inputs import Day, FromText, RequestBody, Timestamp, Uuid

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Name = Annotated[str, Field(min_length=1, max_length=120)]
PersonId = Annotated[str, Field(min_length=1, max_length=64)]
Points = Annotated[int, Field(ge=1, le=1_000_000)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- rules ---------------------------------------------------------------------------------------


class RuleCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"code": "garbage-sorting", "name": "垃圾分类签到", "trigger": "checkin.garbage_sorting", "points": 5},
                {
                    "code": "volunteer-hours",
                    "name": "志愿服务时长",
                    "trigger": "timebank.service.confirmed.v1",
                    "points": 10,
                    "per_hour": True,
                    "cap_count": 20,
                    "cap_period": "month",
                    "valid_from": "2026-01-01T00:00:00+08:00",
                },
            ]
        }
    )
    code: Code
    name: Name
    trigger: Annotated[Trigger, FromText]
    points: Points = Field(description="Points per grant, or per full hour when `per_hour`")
    per_hour: bool = Field(False, description="Only for timebank.service.confirmed.v1: points per hour served")
    cap_count: Annotated[int, Field(ge=1, le=10_000)] | None = None
    cap_period: Annotated[CapPeriod, FromText] | None = None
    lot_validity_days: Annotated[int, Field(ge=1, le=3650)] | None = Field(
        None, description="Points granted by this rule expire after this many days; null: never"
    )
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RuleCreate:
        if (self.cap_count is None) != (self.cap_period is None):
            raise ValueError("cap_count and cap_period go together")
        if self.per_hour and self.trigger is not Trigger.timebank_service_confirmed:
            raise ValueError("per_hour applies only to timebank.service.confirmed.v1")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class RuleUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"points": 8}, {"enabled": False}]})
    never_null = frozenset({"name", "points", "enabled"})
    name: Name | None = None
    points: Points | None = None
    enabled: bool | None = None
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    lot_validity_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class RulePublic(Out):
    id: uuid.UUID
    code: str
    name: str
    trigger: str
    points: int
    per_hour: bool
    cap_count: int | None
    cap_period: str | None
    lot_validity_days: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    enabled: bool


# --- check-ins -----------------------------------------------------------------------------------


class CheckinCodeCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rule_id": "0f1e2d3c-4b5a-4697-8877-665544332211", "valid_on": "2026-03-01"}]}
    )
    rule_id: Uuid
    valid_on: Day | None = Field(None, description="Local day the code is valid on; default today")


class CheckinCodePublic(Out):
    code: str
    rule_id: uuid.UUID
    valid_on: date


class StaffCheckin(RequestBody):
    """A steward scans a resident's code at the sorting station (or marks attendance)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rule_id": "0f1e2d3c-4b5a-4697-8877-665544332211", "resident_id": "r-1001"}]}
    )
    rule_id: Uuid
    resident_id: PersonId


class QrCheckin(RequestBody):
    """A resident scans the day's QR code."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "k3v9x2m7q4"}]})

    code: Annotated[str, Field(min_length=8, max_length=64)]


class GrantPublic(Out):
    id: uuid.UUID
    resident_id: str
    rule_id: uuid.UUID
    points: int
    status: str
    skip_reason: str | None
    created_at: datetime | None


# --- awards and budget ---------------------------------------------------------------------------


class AwardCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"resident_id": "r-1001", "points": 20, "reason": "参与楼道清扫"},
                {"resident_id": "r-1002", "points": -10, "reason": "高空抛物"},
            ]
        }
    )
    resident_id: PersonId
    points: Annotated[int, Field(ge=-100_000, le=100_000, description="Negative for a deduction (负向扣分)")]
    reason: Annotated[str, Field(min_length=2, max_length=500)]

    @model_validator(mode="after")
    def _nonzero(self) -> AwardCreate:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self


class AwardPublic(Out):
    id: uuid.UUID
    resident_id: str
    points: int
    reason: str
    status: str
    created_by: str
    decided_by: str | None
    created_at: datetime | None
    decided_at: datetime | None


class FundingCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"points": 10000, "note": "街道季度预算"}]})
    points: Points
    note: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class BudgetPublic(Out):
    community: str
    funded: int
    granted: int
    clawed_back: int
    remaining: int


# --- points --------------------------------------------------------------------------------------


class PointsPublic(BaseModel):
    resident_id: str
    balance: int = Field(description="Spendable points minus any debt; negative after a clawback")
    reserved: int = Field(description="Points held by redemptions waiting for fulfilment")
    debt: int
    expiring_within_30_days: int


class LotPublic(Out):
    id: int
    points: int
    remaining: int
    expires_at: datetime | None
    created_at: datetime | None


class EntryPublic(Out):
    id: int
    kind: str
    delta: int
    balance_after: int
    ref_type: str | None
    ref_id: str | None
    reason: str | None
    created_at: datetime | None


class MemberPoints(BaseModel):
    resident_id: str
    balance: int


class HouseholdPoints(BaseModel):
    household_id: str
    balance: int
    members: list[MemberPoints]


class LeaderboardRow(BaseModel):
    rank: int
    resident_id: str
    points: int


class Leaderboard(BaseModel):
    month: str
    total: int = Field(description="Points earned in the month by every resident together, not only those in `rows`")
    rows: list[LeaderboardRow]
    from_cache: bool


# --- rewards and redemptions ---------------------------------------------------------------------


class RewardCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"code": "eco-bag", "name": "环保袋", "kind": "item", "points": 50, "stock": 200, "per_resident_limit": 2},
                {"code": "aircon-clean", "name": "空调清洗", "kind": "service", "service_code": "aircon-clean", "points": 300},
            ]
        }
    )
    code: Code
    name: Name
    kind: Annotated[RewardKind, FromText]
    service_code: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    points: Points
    stock: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    per_resident_limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    active_from: Timestamp | None = None
    active_until: Timestamp | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RewardCreate:
        if self.kind is RewardKind.service and not self.service_code:
            raise ValueError("a service reward needs the property service_code")
        if self.kind is RewardKind.item and self.stock is None:
            raise ValueError("an item reward needs its stock")
        if self.active_from and self.active_until and self.active_until <= self.active_from:
            raise ValueError("active_until must be after active_from")
        return self


class RewardUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"add_stock": 100}, {"active_until": "2026-12-31T23:59:59+08:00"}]})
    never_null = frozenset({"name", "points", "enabled"})
    name: Name | None = None
    points: Points | None = None
    add_stock: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    per_resident_limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    enabled: bool | None = None
    active_until: Timestamp | None = None


class RewardPublic(Out):
    id: uuid.UUID
    code: str
    name: str
    kind: str
    service_code: str | None
    points: int
    stock: int | None
    per_resident_limit: int | None
    active_from: datetime | None
    active_until: datetime | None
    enabled: bool


class RedemptionCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reward_id": "1f2e3d4c-5b6a-4798-8877-665544332211", "quantity": 1}]}
    )
    reward_id: Uuid
    quantity: Annotated[int, Field(ge=1, le=100)] = 1


class RedemptionPublic(Out):
    id: uuid.UUID
    resident_id: str
    reward_id: uuid.UUID
    quantity: int
    points: int
    status: str
    ticket_id: str | None
    release_reason: str | None
    deadline: datetime
    created_at: datetime | None
    settled_at: datetime | None


class RedemptionSettle(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "不想要了"}]})
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None


RedemptionStatusFilter = Literal["reserved", "captured", "released"]
AwardStatusFilter = Literal["pending", "applied", "rejected"]
