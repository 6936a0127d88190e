"""Security's API models: request bodies follow the kit's input policy; responses never carry a
name, a phone number or face data."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NotRequired

from fastapi import Body
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, with_config
from typing_extensions import TypedDict

from services.kit.inputs import PRINTABLE_PATTERN, TEXT_MAX_LENGTH, ClientId, FromText, RequestBody, Timestamp
from services.security.domain import AlarmKind, CredentialKind, DeviceKind, Direction

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class DeviceCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "door-b1-east", "building_id": "b1", "kind": "door", "name": "1幢东门", "heartbeat_s": 60}]
        }
    )
    id: ClientId = Field(description="The machine client's id: the subject of the tokens the device calls with")
    building_id: Id
    household_id: Id | None = Field(None, description="For an in-home sensor: the household whose watch its activity feeds")
    kind: Annotated[DeviceKind, FromText]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    heartbeat_s: Annotated[int, Field(ge=10, le=86400)] = 60


class DevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    building_id: str
    household_id: str | None
    kind: str
    name: str
    heartbeat_s: int
    last_seen_at: datetime
    offline_since: datetime | None


class Heartbeat(BaseModel):
    device_id: str
    was_offline: bool
    seen_at: datetime


class PassCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"valid_from": "2026-12-06T09:00:00+08:00", "valid_until": "2026-12-06T18:00:00+08:00", "max_entries": 2}
            ]
        }
    )
    valid_from: Timestamp
    valid_until: Timestamp
    max_entries: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="Entries allowed; none: any within the window"
    )
    plate: Annotated[str, Field(min_length=5, max_length=10, pattern=r"^[0-9A-Z\u4e00-\u9fff]+$")] | None = Field(
        None, description="The visitor's car: parking's gate lets it in within the window, without a booking"
    )


class PassPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    building_id: str
    valid_from: datetime
    valid_until: datetime
    max_entries: int | None
    entries_used: int
    plate: str | None
    revoked_at: datetime | None
    created_at: datetime


class IssuedPass(PassPublic):
    token: str = Field(description="The signed pass: the QR code's content (docs/security.md)")
    code: str = Field(description="6-digit keypad code, checked online or against the device's pulled pass list")


class ExpectedVisitor(BaseModel):
    """A staff view: when and how many times, never who."""

    pass_id: str
    building_id: str
    valid_from: datetime
    valid_until: datetime
    max_entries: int | None
    entries_used: int
    has_plate: bool


class PassCheck(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "042917"}]})
    token: Annotated[str, Field(min_length=10, max_length=512)] | None = None
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None


class PassDecision(BaseModel):
    admit: bool
    reason: str = Field(description="ok, or the rule that refused: malformed, bad-signature, unknown-key, other-community, ...")
    pass_id: str | None = None
    entries_left: int | None = None


class PublishedKeys(BaseModel):
    community: str
    keys: list[dict[str, str]] = Field(description="JWK (RFC 8037, OKP Ed25519), current key first")


class Revocation(BaseModel):
    pass_id: str
    revoked_seq: int
    valid_until: datetime


class DevicePass(BaseModel):
    """What a door keeps to check a keypad code offline: the code and the signed pass it stands for."""

    pass_id: str
    code: str
    token: str
    valid_until: datetime
    issued_seq: int = Field(description="Keep the last one: `after` resumes the next sync from it")


class CredentialCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"credential_id": "card-7f3a", "household_id": "h-101"}]})
    credential_id: Id
    household_id: Id


Plate = Annotated[str, Field(min_length=5, max_length=10, pattern=PRINTABLE_PATTERN)]


class AccessReport(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "e-1",
                    "direction": "in",
                    "credential_kind": "card",
                    "credential_id": "card-7f3a",
                    "occurred_at": "2026-12-06T09:00:00+08:00",
                }
            ]
        }
    )
    event_id: Id = Field(description="The device's own id for the event; a retry with the same id is stored once")
    direction: Annotated[Direction, FromText]
    credential_kind: Annotated[CredentialKind, FromText]
    credential_id: Id | None = Field(None, description="Opaque card or face id the controller assigns; never face data")
    pass_id: Id | None = None
    plate: Plate | None = None
    occurred_at: Timestamp


class AccessBatch(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "event_id": "e-1",
                            "direction": "in",
                            "credential_kind": "card",
                            "credential_id": "card-7f3a",
                            "occurred_at": "2026-12-06T09:00:00+08:00",
                        }
                    ]
                }
            ]
        }
    )
    events: Annotated[list[AccessReport], Field(min_length=1, max_length=1000)]


# A batch as the ingestion route reads it: `AccessBatch`'s rules (the kit's input policy) written as
# field types only, so pydantic-core checks all of it without a call into Python per field and
# event (the kit's `RequestBody` checks each string and each event's numbers in Python, which here
# is redundant: every text field but the plate has an id pattern or is an enumeration, the plate
# carries the printable pattern, and no field is a number). Validated into plain dicts, not models:
# a batch of 100 costs about a fifth of `AccessBatch`'s validation. `AccessBatch` stays the
# documented body; tests/security/test_access_batch.py feeds both the same cases and requires the
# same answers.
_POLICY = ConfigDict(extra="forbid", strict=True, str_max_length=TEXT_MAX_LENGTH)


@with_config(_POLICY)
class IncomingAccess(TypedDict):
    event_id: Id
    direction: Annotated[Direction, FromText]
    credential_kind: Annotated[CredentialKind, FromText]
    credential_id: NotRequired[Id | None]
    pass_id: NotRequired[Id | None]
    plate: NotRequired[Plate | None]
    occurred_at: Timestamp


@with_config(_POLICY)
class IncomingAccessBatch(TypedDict):
    events: Annotated[list[IncomingAccess], Field(min_length=1, max_length=1000)]


INCOMING_ACCESS_BATCH: TypeAdapter[IncomingAccessBatch] = TypeAdapter(IncomingAccessBatch)

if TYPE_CHECKING:
    AccessBatchBody = IncomingAccessBatch
else:
    # Typed `Any` for pydantic: the route's document then holds `AccessBatch` and nothing of the
    # TypedDicts (which would otherwise be published as unused components).
    AccessBatchBody = Annotated[
        Any, PlainValidator(INCOMING_ACCESS_BATCH.validate_python, json_schema_input_type=AccessBatch), Body()
    ]
"""The ingestion route's body: documented as `AccessBatch`, validated as `IncomingAccessBatch`."""


class AccessAccepted(BaseModel):
    received: int
    stored: int = Field(description="New events; the rest were already stored (retries)")


class AccessEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: str
    building_id: str
    direction: str
    credential_kind: str
    pass_id: str | None
    occurred_at: datetime


class AlarmReport(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"incident_id": "smoke-2026-12-06-0912", "kind": "smoke"}]})
    incident_id: Id = Field(description="The device's id for this incident: repeats are the same alarm")
    kind: Annotated[AlarmKind, FromText]
    at: Timestamp | None = None


class AlarmPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    kind: str
    building_id: str
    household_id: str | None
    device_id: str | None
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class WatchCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"relative_id": "r-son", "hours": 24}]})
    relative_id: Id = Field(description="The relative who must consent and who is told")
    hours: Annotated[int, Field(ge=1, le=168)] = 24


class WatchPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    elder_id: str
    relative_id: str
    household_id: str
    hours: int
    consented_at: datetime | None
    last_activity_at: datetime
