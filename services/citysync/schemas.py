"""citysync's API models (never the table classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.citysync.domain import Scene
from services.kit.inputs import ClientId, FromText, RequestBody

ConsumerId = ClientId
"""The gateway client id; the subject of the consumer's city_sync tokens."""


class ConsumerCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "lishui-data", "name": "丽水市公共数据平台"}]})
    id: ConsumerId
    name: Annotated[str, Field(min_length=1, max_length=100, description="The organisation, e.g. 丽水市公共数据平台")]


class GrantCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"scene": "timebank"}]})
    scene: Annotated[Scene, FromText]


class GrantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    consumer_id: str
    scene: str
    granted_by: str
    granted_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


class ConsumerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    community: str
    name: str
    status: str
    registered_by: str
    registered_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None
    grants: list[GrantPublic] = Field(default_factory=list, description="Live and revoked grants, oldest first")


class ConsumersPublic(BaseModel):
    items: list[ConsumerPublic]
    next_cursor: str | None


class PullPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    consumer_id: str
    scene: str
    after_seq: int
    last_seq: int
    record_count: int
    pulled_at: datetime


class PullsPublic(BaseModel):
    items: list[PullPublic]
    next_cursor: str | None


class FeedRecordPublic(BaseModel):
    seq: int = Field(description="Gap-free sequence number within this community's feed of this scene")
    community: str
    scene: str
    record_type: str
    schema_version: int
    event_time: datetime
    data: dict[str, Any] = Field(description="De-identified fields; identifiers are this consumer's own hashes")


class FeedPage(BaseModel):
    scene: str
    community: str
    region_code: str | None = Field(
        None,
        description="The community's administrative division code (行政区划代码), from its record at the gateway",
        examples=["331102"],
    )
    records: list[FeedRecordPublic]
    next_cursor: str = Field(description="Pass as `after` next time (store it with what you processed)")
    has_more: bool


class FeedSummary(BaseModel):
    scene: str
    last_seq: int
