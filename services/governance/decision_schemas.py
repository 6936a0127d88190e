"""API models of collective choice (集体选择): drafting, ballots, receipts and results."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.governance.tally import OWNER_OPTIONS, Kind
from services.kit.inputs import FromText, RequestBody, Timestamp


class ProxyBasis(enum.StrEnum):
    written = "written"
    relative = "relative"


PersonId = Annotated[str, Field(min_length=1, max_length=64)]
Option = Annotated[str, Field(min_length=1, max_length=60)]


class DecisionCreate(RequestBody):
    """Owners' decisions take the options yes / no / abstain; a household poll lists its own."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "household_poll",
                    "question": "社区食堂选哪一家供餐？",
                    "options": ["阿婆家常菜", "邻里食堂"],
                    "opens_at": "2026-12-10T08:00:00+08:00",
                    "closes_at": "2026-12-17T20:00:00+08:00",
                    "ballots_by_name": False,
                }
            ]
        }
    )
    kind: Annotated[Kind, FromText]
    question: Annotated[str, Field(min_length=1, max_length=500)]
    options: Annotated[list[Option], Field(max_length=20)] = Field(default_factory=list)
    opens_at: Timestamp = Field(description="Ballots are taken from this time (give it in Asia/Shanghai or UTC)")
    closes_at: Timestamp = Field(description="The closing job counts the ballots at this time")
    ballots_by_name: bool = Field(False, description="Whether the committee may see who cast which ballot")

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> DecisionCreate:
        if self.kind.by_owners:
            if self.options and list(self.options) != list(OWNER_OPTIONS):
                raise ValueError("an owners' decision has the options yes, no, abstain")
            self.options = list(OWNER_OPTIONS)
        elif len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValueError("a poll needs at least two different options")
        if self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        return self


class DecisionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: str
    question: str
    options: list[str]
    opens_at: datetime
    closes_at: datetime
    ballots_by_name: bool
    status: str
    opened_at: datetime | None
    closed_at: datetime | None
    result: dict[str, Any] | None = Field(
        None, description="Counts and outcome once closed; reading one decision lists every receipt under its option"
    )


class MyDecision(DecisionPublic):
    my_receipt: str | None = Field(None, description="The receipt of the ballot cast for my voter key, if any")


class BallotCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"option": "yes"}]})
    option: Option
    on_behalf_of: PersonId | None = Field(None, description="The owner a recorded proxy votes for")


class PaperBallotCreate(RequestBody):
    """A paper ballot (纸质表决票) a worker enters for a unit's owner or a household."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"household_id": "hh-2-501", "option": "no"}]})
    household_id: PersonId
    option: Option


class BallotPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    decision_id: uuid.UUID
    option: str
    channel: str
    receipt: str = Field(description="Find it under its option in the closed result to check the ballot was counted as cast")
    cast_at: datetime


class ProxyCreate(RequestBody):
    """A proxy the worker has verified: a written authorisation (授权委托书) they have seen, or a registered
    relative of an elder (the relation named)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"owner_id": "res-wang-xiuying", "proxy_id": "res-li-jun", "basis": "relative", "relation": "儿子"},
                {"owner_id": "res-zhou-min", "proxy_id": "res-chen-gang", "basis": "written"},
            ]
        }
    )
    owner_id: PersonId
    proxy_id: PersonId
    basis: Annotated[ProxyBasis, FromText] = ProxyBasis.written
    relation: Annotated[str, Field(min_length=1, max_length=30)] | None = None

    @model_validator(mode="after")
    def _relation_for_a_relative(self) -> ProxyCreate:
        if (self.basis is ProxyBasis.relative) != (self.relation is not None):
            raise ValueError("a relative's proxy names the relation, a written authorisation does not")
        if self.owner_id == self.proxy_id:
            raise ValueError("an owner is not their own proxy")
        return self


class ProxyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    owner_id: str
    proxy_id: str
    basis: str
    relation: str | None
    recorded_by: str
    recorded_at: datetime


class NamedBallot(BaseModel):
    """A ballot as the committee sees it when the decision shows ballots by name."""

    model_config = ConfigDict(from_attributes=True)
    household_id: str
    option: str
    channel: str
    cast_by: str
    on_behalf_of: str | None
    proxy_basis: str | None = Field(None, description="For a proxy's ballot: `written` authorisation or `relative` of an elder")
    cast_at: datetime


class RollSummary(BaseModel):
    units: int = Field(description="Exclusive units (households) on the roll")
    owners: int = Field(description="Owners as counted (the developer's unsold units once, a buyer's units once)")
    area: int = Field(description="Exclusive area in hundredths of a square metre")
