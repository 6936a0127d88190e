"""Security's tables: devices, the communities' pass signing keys, visitor passes, credentials,
access events, inactivity watches and alarms, plus a small directory of property's residents and
buildings (who lives where, who stewards a building).

No table holds a name, a phone number or face data: a card or face is an opaque credential id the
door controller made up; the visitor is known only by the pass (and its optional plate).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    Sequence,
    UniqueConstraint,
    func,
    text,
)
from sqlmodel import Field, SQLModel

from services.kit.db import model_base, table_of
from services.security.domain import ALARM_KINDS, CREDENTIAL_KINDS, DEVICE_KINDS, DIRECTIONS, sql_in

if TYPE_CHECKING:
    SecurityModel = SQLModel
else:
    SecurityModel = model_base("SecurityModel")


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None),
    )


class Device(SecurityModel, table=True):
    """A door controller, gate, camera or sensor; its id is the subject of its machine-client tokens.
    `offline_since` is set once by the sweep and cleared by the next heartbeat: each change is one
    conditional UPDATE, so two replicas cannot both raise (or clear) the same outage."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(sql_in("kind", DEVICE_KINDS), name="kind"),
        CheckConstraint("heartbeat_s BETWEEN 10 AND 86400", name="heartbeat_s"),
        Index("ix_devices_silence", "last_seen_at", postgresql_where=text("offline_since IS NULL")),
        # The community's device list in its keyset order.
        Index("ix_devices_building", "community", "building_id", "id"),
    )
    id: str = Field(primary_key=True)
    community: str
    building_id: str
    # An in-home sensor belongs to a household: its activity counts for that household's watch.
    household_id: str | None = None
    kind: str
    name: str
    heartbeat_s: int
    last_seen_at: datetime | None = _ts(nullable=False, default_now=True)
    offline_since: datetime | None = _ts()
    created_at: datetime | None = _ts(nullable=False, default_now=True)


class PassKey(SecurityModel, table=True):
    """A community's Ed25519 pass-signing key. The private half stays in this database (any replica
    signs); the public half is what `GET /pass-keys` publishes to devices."""

    __tablename__ = "pass_keys"
    __table_args__ = (Index("uq_pass_keys_current", "community", unique=True, postgresql_where=text("retired_at IS NULL")),)
    id: str = Field(primary_key=True)
    community: str
    private_raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    public_raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime | None = _ts(nullable=False, default_now=True)
    retired_at: datetime | None = _ts()
    # A retired key is published until the last pass it may have signed ends (pass_keys.rotate).
    published_until: datetime | None = _ts()


class VisitorPass(SecurityModel, table=True):
    __tablename__ = "passes"
    __table_args__ = (
        CheckConstraint("valid_until > valid_from", name="window"),
        CheckConstraint("max_entries IS NULL OR max_entries > 0", name="max_entries"),
        CheckConstraint("max_entries IS NULL OR entries_used <= max_entries", name="entries_used"),
        # Each list's keyset order, the id breaking ties: my passes, the day's expected visitors.
        Index("ix_passes_resident", "community", "resident_id", "created_at", "id"),
        Index("ix_passes_building_day", "community", "building_id", "valid_from", "id"),
        # A door's sync of its building's passes, in issue order.
        Index("ix_passes_building_issued", "community", "building_id", "issued_seq"),
        Index("ix_passes_code", "community", "code", "valid_until"),
        Index("ix_passes_revoked", "community", "revoked_seq", postgresql_where=text("revoked_seq IS NOT NULL")),
    )
    id: str = Field(primary_key=True)
    community: str
    resident_id: str
    household_id: str
    building_id: str
    code: str
    plate: str | None = None
    valid_from: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    valid_until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    max_entries: int | None = None
    entries_used: int = 0
    token: str
    revoked_at: datetime | None = _ts()
    # Devices pull revocations after the last number they saw.
    revoked_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Devices pull their building's passes after the last number they saw (issued in commit order).
    issued_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime | None = _ts(nullable=False, default_now=True)


class Credential(SecurityModel, table=True):
    """A card or face enrolment, known only by the opaque id the controller reports, and whose
    household it opens for (registered by staff)."""

    __tablename__ = "credentials"
    community: str = Field(primary_key=True)
    credential_id: str = Field(primary_key=True)
    household_id: str


class AccessEvent(SecurityModel, table=True):
    """An entry, exit or in-home activity a device reported. The device's own event id is the
    key: a retried batch inserts nothing twice (ON CONFLICT DO NOTHING)."""

    __tablename__ = "access_events"
    __table_args__ = (
        UniqueConstraint("device_id", "device_event_id"),
        CheckConstraint(sql_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint(sql_in("credential_kind", CREDENTIAL_KINDS), name="credential_kind"),
        Index("ix_access_events_occurred_at", "occurred_at"),
        Index("ix_access_events_door", "community", "device_id", "occurred_at"),
        Index("ix_access_events_household", "community", "household_id", "occurred_at"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    community: str
    device_id: str
    device_event_id: str
    building_id: str
    direction: str
    credential_kind: str
    credential_id: str | None = None
    pass_id: str | None = None
    plate: str | None = None
    household_id: str | None = None
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    received_at: datetime | None = _ts(nullable=False, default_now=True)


class Watch(SecurityModel, table=True):
    """An inactivity watch (独居老人关怀): an elder opted in, a relative consented; no activity of the
    household for `hours` raises an alarm."""

    __tablename__ = "watches"
    __table_args__ = (
        UniqueConstraint("community", "elder_id"),
        CheckConstraint("hours BETWEEN 1 AND 168", name="hours"),
        Index("ix_watches_due", "last_activity_at", postgresql_where=text("consented_at IS NOT NULL")),
        # "The watches I am the relative of" (the elder's side is the unique constraint).
        Index("ix_watches_relative", "community", "relative_id", "id"),
    )
    id: str = Field(primary_key=True)
    community: str
    elder_id: str
    household_id: str
    building_id: str
    relative_id: str
    hours: int
    consented_at: datetime | None = _ts()
    last_activity_at: datetime | None = _ts(nullable=False, default_now=True)
    created_at: datetime | None = _ts(nullable=False, default_now=True)


class Alarm(SecurityModel, table=True):
    """An alarm. `incident_key` names the incident (a device's own incident id, or a watch and the
    activity it went silent after): its unique constraint is what makes an alarm raised once, however
    many replicas or retries see it."""

    __tablename__ = "alarms"
    __table_args__ = (
        UniqueConstraint("community", "incident_key"),
        CheckConstraint(sql_in("kind", ALARM_KINDS), name="kind"),
        Index("ix_alarms_open_watch", "watch_id", postgresql_where=text("cleared_at IS NULL AND watch_id IS NOT NULL")),
        # The community's alarms newest first, the id breaking ties (the list's keyset).
        Index("ix_alarms_community_raised", "community", "raised_at", "id"),
    )
    id: str = Field(primary_key=True)
    community: str
    incident_key: str
    kind: str
    building_id: str
    household_id: str | None = None
    device_id: str | None = None
    watch_id: str | None = None
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    cleared_at: datetime | None = _ts()
    # The first answer by staff (acknowledged once): the response time is acknowledged_at - raised_at.
    acknowledged_at: datetime | None = _ts()
    acknowledged_by: str | None = None


class KnownResident(SecurityModel, table=True):
    """Who lives where (from property's `resident.registered`); no name or phone is kept."""

    __tablename__ = "residents"
    community: str = Field(primary_key=True)
    resident_id: str = Field(primary_key=True)
    household_id: str
    building_id: str


class KnownBuilding(SecurityModel, table=True):
    """A building's steward (from property's `building.registered`), named on its alarms."""

    __tablename__ = "buildings"
    community: str = Field(primary_key=True)
    building_id: str = Field(primary_key=True)
    steward_id: str | None = None


DEVICES = table_of(Device)
PASS_KEYS = table_of(PassKey)
PASSES = table_of(VisitorPass)
CREDENTIALS = table_of(Credential)
ACCESS_EVENTS = table_of(AccessEvent)
WATCHES = table_of(Watch)
ALARMS = table_of(Alarm)
RESIDENTS = table_of(KnownResident)
# Numbers revocations in order, so a device pulls those after the last it saw.
REVOCATION_SEQ = Sequence("pass_revocation_seq", metadata=SecurityModel.metadata)
ISSUE_SEQ = Sequence("pass_issue_seq", metadata=SecurityModel.metadata)
BUILDINGS = table_of(KnownBuilding)
