"""API models of the time bank (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from services.kit.inputs import IsoDate, RequestBody, Timestamp, Uuid

ServiceType = Literal["companionship", "meal", "bathing", "medical_escort", "cleaning", "shopping", "other"]
MemberId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Minutes = Annotated[int, Field(ge=1, le=100_000, description="Integer minutes, > 0")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class Balance(BaseModel):
    posted_minutes: int = Field(description="credits_posted - debits_posted")
    available_minutes: int = Field(description="posted minus pending debits: what may still be spent")
    pending_in_minutes: int
    pending_out_minutes: int


class AccountOut(BaseModel):
    id: uuid.UUID
    kind: Literal["member", "pool", "community"]
    owner_id: str | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance: Balance


class MemberEnrol(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"volunteer": True}, {"member_id": "r-1001", "elder": True}]})
    member_id: MemberId | None = Field(None, description="Only a community worker may enrol someone else")
    volunteer: bool = False
    elder: bool = False

    @model_validator(mode="after")
    def _some_role(self) -> MemberEnrol:
        if not (self.volunteer or self.elder):
            raise ValueError("enrol as volunteer, elder or both")
        return self


class MemberOut(BaseModel):
    member_id: str
    community: str
    is_volunteer: bool
    is_elder: bool
    priority_elder: bool
    birth_date: date | None
    age_verified_at: datetime | None
    account_id: uuid.UUID
    balance: Balance


class AwaitingMember(BaseModel):
    """A member no worker has verified the birth date of yet."""

    model_config = ConfigDict(from_attributes=True)
    member_id: str
    is_volunteer: bool
    is_elder: bool
    enrolled_at: datetime


class AgeVerification(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"birth_date": "1948-05-12", "priority_elder": True}]})
    birth_date: IsoDate = Field(description="From the ID card, checked in person")
    priority_elder: bool = Field(False, description="重点空巢独居老人: care is paid from the pool")

    @model_validator(mode="after")
    def _plausible(self) -> AgeVerification:
        if not date(1900, 1, 1) <= self.birth_date <= date.today():
            raise ValueError("birth_date out of range")
        return self


class RelativeIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"relative_id": "r-1002", "relation": "子女"}]})
    relative_id: MemberId
    relation: Annotated[str, Field(min_length=1, max_length=20, description="e.g. 子女, 配偶, 孙辈")]


class RelativeOut(BaseModel):
    member_id: str
    relative_id: str
    relation: str
    verified_by: str
    verified_at: datetime


class CommunitySettingsFields(BaseModel):
    withdrawal_age: Literal[60, 65] = 60
    storage_cap_minutes: Annotated[int, Field(ge=60, le=10_000_000)] = 90_000
    min_balance_before_first_withdrawal: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    confirmation_timeout_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 90)] = 4_320
    hours_expire: bool = Field(False, description="Hours older than hours_valid_months expire to the pool")
    hours_valid_months: Annotated[int, Field(ge=1, le=600, description="How long credited hours stay valid")] = 36


class CommunitySettingsIn(RequestBody, CommunitySettingsFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "withdrawal_age": 60,
                    "storage_cap_minutes": 90000,
                    "min_balance_before_first_withdrawal": 0,
                    "confirmation_timeout_minutes": 4320,
                    "hours_expire": True,
                    "hours_valid_months": 36,
                }
            ]
        }
    )


class CommunitySettingsChange(RequestBody):
    """The settings a worker changes; the ones left out keep their value. Explicit nulls are refused:
    a setting has no "unset" state."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"withdrawal_age": 65}, {"hours_expire": False}]})
    withdrawal_age: Literal[60, 65] | None = None
    storage_cap_minutes: Annotated[int, Field(ge=60, le=10_000_000)] | None = None
    min_balance_before_first_withdrawal: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    confirmation_timeout_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 90)] | None = None
    hours_expire: bool | None = None
    hours_valid_months: Annotated[int, Field(ge=1, le=600)] | None = None

    # Defaults are not validated, so this sees only a null the client sent.
    @field_validator("*")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("a setting cannot be null; leave it out to keep its value")
        return value


class CommunitySettingsOut(CommunitySettingsFields):
    model_config = ConfigDict(extra="ignore", from_attributes=True)
    community: str
    updated_at: datetime


class CareRequestIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "service_type": "companionship",
                    "starts_at": "2026-03-01T09:00:00+08:00",
                    "place": "3栋2单元501",
                    "minutes_estimated": 60,
                    "note": "陪老人去菜市场",
                }
            ]
        }
    )
    elder_id: MemberId | None = Field(None, description="Defaults to the caller (an elder asking for themself)")
    service_type: ServiceType
    starts_at: Timestamp
    place: Annotated[str, Field(min_length=1, max_length=200)]
    minutes_estimated: Annotated[int, Field(ge=1, le=720)]
    note: Annotated[str | None, Field(max_length=500)] = None


class CareRequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    community: str
    elder_id: str
    requested_by: str
    service_type: str
    place: str
    note: str | None
    starts_at: datetime
    minutes_estimated: int
    status: str
    volunteer_id: str | None
    accepted_at: datetime | None
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    transfer_id: uuid.UUID | None
    created_at: datetime


class CheckIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"at": "2026-03-01T09:02:00+08:00"}]})
    at: Timestamp | None = Field(None, description="Defaults to now")


class CheckOut(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"transfer_id": "5b0c1d2e-3f40-4a51-8b62-7c83d94ea5f6", "at": "2026-03-01T10:05:00+08:00"}]
        }
    )
    transfer_id: Uuid = Field(description="Client-chosen id of the pending transfer")
    at: Timestamp | None = Field(None, description="Defaults to now")


class ConfirmIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "6c1d2e3f-4051-4b62-8c73-8d94ea5fb607", "minutes": 60}]})
    id: Uuid = Field(description="Client-chosen id of the posting transfer")
    minutes: Annotated[int | None, Field(ge=1, le=100_000, description="Fewer than logged, or all if omitted")] = None


class DisputeIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "7d2e3f40-5162-4c73-9d84-9ea5fb60c718", "reason": "志愿者未到场"}]}
    )
    id: Uuid = Field(description="Client-chosen id of the voiding transfer")
    reason: Reason


class SpendIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "8e3f4051-6273-4d84-ae95-afb60c71d829", "minutes": 60, "service_type": "meal"}]}
    )
    id: Uuid
    minutes: Minutes
    service_type: ServiceType


class GiftIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "9f405162-7384-4e95-bfa6-b0c71d82e93a", "to_member_id": "r-1002", "minutes": 30}]}
    )
    id: Uuid
    to_member_id: MemberId
    minutes: Minutes


class DonationIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "a0516273-8495-4fa6-80b7-c1d82e93fa4b", "minutes": 120}]})
    id: Uuid
    minutes: Minutes


class FundingIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "b1627384-95a6-40b7-91c8-d2e93fa40b5c", "minutes": 600, "reason": "街道年度拨款"}]}
    )
    id: Uuid
    minutes: Minutes
    reason: Reason


class ReversalIn(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "c2738495-a6b7-41c8-a2d9-e3fa40b51c6d", "reason": "重复记账"}]}
    )
    id: Uuid = Field(description="Client-chosen id of the reversing transfer")
    reason: Reason


BATCH_ITEM_EXAMPLE: JsonDict = {
    "id": "d384a5b6-c7d8-42e9-b3fa-40b51c6d7e8f",
    "kind": "service",
    "debit_account_id": "e495b6c7-d8e9-43fa-84b5-1c6d7e8f9a0b",
    "credit_account_id": "f5a6c7d8-e9fa-44b5-95c6-2d7e8f9a0b1c",
    "minutes": 60,
    "service_type": "companionship",
    "elder_id": "r-1001",
}


class BatchItem(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_ITEM_EXAMPLE]})
    id: Uuid
    kind: Literal["service", "donation", "funding"]
    debit_account_id: Uuid
    credit_account_id: Uuid
    minutes: Minutes
    service_type: ServiceType | None = None
    elder_id: MemberId | None = Field(None, description="For service: the elder who was served")

    @model_validator(mode="after")
    def _service_fields(self) -> BatchItem:
        if self.kind == "service" and (self.service_type is None or self.elder_id is None):
            raise ValueError("a service transfer needs service_type and elder_id")
        return self


class BatchIn(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"transfers": [BATCH_ITEM_EXAMPLE]}]})
    transfers: Annotated[list[BatchItem], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _distinct_ids(self) -> BatchIn:
        if len({t.id for t in self.transfers}) != len(self.transfers):
            raise ValueError("transfer ids in a batch must be distinct")
        return self


class TransferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    seq: int
    community: str
    kind: str
    phase: Literal["pending", "posted", "voided"]
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount_minutes: int
    pending_id: uuid.UUID | None
    reverses_id: uuid.UUID | None
    care_request_id: uuid.UUID | None
    service_type: str | None
    reason: str | None
    resolution: str | None
    debit_balance_after: int | None
    credit_balance_after: int | None
    timeout_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime


class PendingTransferOut(TransferOut):
    """A pending transfer in the staff's lists, with why it was resolved."""

    resolution_reason: str | None = Field(
        description="The reason given when it was voided: the dispute's reason for a disputed transfer "
        "(as the elder, a delegate or a worker gave it), `confirmation timed out` for an expired one; "
        "null while awaiting confirmation"
    )


class BatchOut(BaseModel):
    transfers: list[TransferOut]


class ExpiringHours(BaseModel):
    on: date = Field(description="Local date (Asia/Shanghai) from which these minutes are past the validity period")
    minutes: int


class HoursExpiryOutlook(BaseModel):
    """What a member would lose to expiry (时间到期) if nothing else changes: spending first uses
    the oldest hours, so spending before a date saves those minutes."""

    member_id: str
    hours_expire: bool = Field(description="Whether hours expire in this community at all")
    valid_months: int
    available_minutes: int
    expiring: list[ExpiringHours] = Field(
        description="By date, soonest first; minutes on today's date are already past the period and move at the next run"
    )


class PassbookEntry(BaseModel):
    """One line of the passbook (存折): signed from the member's side, with the balance after it."""

    transfer_id: uuid.UUID
    seq: int
    kind: str
    minutes: int = Field(description="+ credited to the member, - debited")
    balance_after: int
    counterparty_account_id: uuid.UUID
    service_type: str | None
    reason: str | None
    pending_id: uuid.UUID | None
    reverses_id: uuid.UUID | None
    created_at: datetime


class PoolOut(BaseModel):
    pool: AccountOut
    community_account: AccountOut
    open_pending_count: int
    open_pending_minutes: int


class ServiceTypeSummary(BaseModel):
    service_type: str
    services: int
    minutes: int


class CommunitySummary(BaseModel):
    community: str
    month: str
    services: int
    minutes_served: int
    by_service_type: list[ServiceTypeSummary]
    members: int
    volunteers: int
    elders: int


class LedgerFinding(BaseModel):
    check: str = Field(
        description="account_totals_disagree_with_transfers, pending_resolution_mismatch, "
        "transfer_crosses_communities, "
        "posted_debits_differ_from_credits or pending_debits_differ_from_credits"
    )
    count: int = Field(description="how many rows are in the wrong")
    ids: list[str] = Field(description="the first 50 of them (account or transfer ids)")
    detail: dict[str, int]


class LedgerAuditOut(BaseModel):
    community: str
    reconciles: bool = Field(description="true when the account totals agree with the transfers everywhere")
    accounts: int
    transfers: int
    findings: list[LedgerFinding]
