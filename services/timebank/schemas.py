"""API models of the time bank (never the table classes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

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


class MemberEnrol(BaseModel):
    model_config = ConfigDict(extra="forbid")
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


class AgeVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")
    birth_date: date = Field(description="From the ID card, checked in person")
    priority_elder: bool = Field(False, description="重点空巢独居老人: care is paid from the pool")

    @model_validator(mode="after")
    def _plausible(self) -> AgeVerification:
        if not date(1900, 1, 1) <= self.birth_date <= date.today():
            raise ValueError("birth_date out of range")
        return self


class RelativeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relative_id: MemberId
    relation: Annotated[str, Field(min_length=1, max_length=20, description="e.g. 子女, 配偶, 孙辈")]


class RelativeOut(BaseModel):
    member_id: str
    relative_id: str
    relation: str
    verified_by: str
    verified_at: datetime


class CommunitySettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    withdrawal_age: Literal[60, 65] = 60
    storage_cap_minutes: Annotated[int, Field(ge=60, le=10_000_000)] = 90_000
    min_balance_before_first_withdrawal: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    confirmation_timeout_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 90)] = 4_320
    hours_expire: bool = Field(False, description="Hours older than hours_valid_months expire to the pool")
    hours_valid_months: Annotated[int, Field(ge=1, le=600, description="How long credited hours stay valid")] = 36


class CommunitySettingsChange(BaseModel):
    """The settings a worker changes; the ones left out keep their value. Explicit nulls are refused:
    a setting has no "unset" state."""

    model_config = ConfigDict(extra="forbid")
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


class CommunitySettingsOut(CommunitySettingsIn):
    model_config = ConfigDict(extra="ignore", from_attributes=True)
    community: str
    updated_at: datetime


class CareRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    elder_id: MemberId | None = Field(None, description="Defaults to the caller (an elder asking for themself)")
    service_type: ServiceType
    starts_at: AwareDatetime
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


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(None, description="Defaults to now")


class CheckOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transfer_id: uuid.UUID = Field(description="Client-chosen id of the pending transfer")
    at: AwareDatetime | None = Field(None, description="Defaults to now")


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID = Field(description="Client-chosen id of the posting transfer")
    minutes: Annotated[int | None, Field(ge=1, le=100_000, description="Fewer than logged, or all if omitted")] = None


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID = Field(description="Client-chosen id of the voiding transfer")
    reason: Reason


class SpendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    minutes: Minutes
    service_type: ServiceType


class GiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    to_member_id: MemberId
    minutes: Minutes


class DonationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    minutes: Minutes


class FundingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    minutes: Minutes
    reason: Reason


class ReversalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID = Field(description="Client-chosen id of the reversing transfer")
    reason: Reason


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    kind: Literal["service", "donation", "funding"]
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    minutes: Minutes
    service_type: ServiceType | None = None
    elder_id: MemberId | None = Field(None, description="For service: the elder who was served")

    @model_validator(mode="after")
    def _service_fields(self) -> BatchItem:
        if self.kind == "service" and (self.service_type is None or self.elder_id is None):
            raise ValueError("a service transfer needs service_type and elder_id")
        return self


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
