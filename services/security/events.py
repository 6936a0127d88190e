"""Security's events, published through the outbox to `security.events`, and the property events it
reads (only the fields it uses).

No event carries a name, a phone number, a plate, a credential id or face data: an access event
says which door, which way, by what kind of credential and when; an alarm says what, where and
whom to tell (by person id).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "security.events"
PROPERTY_TOPIC = "property.events"
publisher = EventPublisher(source="/services/security", topic=TOPIC)


class DeviceWentOffline(EventData):
    """A device stayed silent past its heartbeat allowance, once per outage: the building's steward is told."""

    event_type = "security.device.offline.v1"
    device_id: str
    community: str
    building_id: str
    kind: str
    steward_id: str | None
    last_seen_at: datetime
    offline_since: datetime


class DeviceCameBack(EventData):
    """A device that was offline sent a heartbeat again, once per outage: its outage is over."""

    event_type = "security.device.back_online.v1"
    device_id: str
    community: str
    building_id: str
    kind: str
    steward_id: str | None
    offline_since: datetime
    back_at: datetime


class PassIssued(EventData):
    """A resident invited a visitor: the building, the window and the entries; no visitor name, no
    plate, not even which resident (the city counts visitors; nobody else needs who invited)."""

    event_type = "security.pass.issued.v1"
    pass_id: str
    community: str
    building_id: str
    valid_from: datetime
    valid_until: datetime
    max_entries: int | None
    has_plate: bool


class PassCarAllowed(EventData):
    """A pass with a plate: parking's gate lets this car in within the window, for up to
    `max_entries` entries (None: any), without a booking. The one security event that carries a
    plate, for parking alone (parking already holds plates); it names no visitor and no resident,
    and the city feed leaves it out."""

    event_type = "security.pass.car_allowed.v1"
    pass_id: str
    community: str
    plate: str
    valid_from: datetime
    valid_until: datetime
    max_entries: int | None


class PassRevoked(EventData):
    """A pass was revoked: devices add it to their revocation list (they also pull the list)."""

    event_type = "security.pass.revoked.v1"
    pass_id: str
    community: str
    building_id: str
    revoked_seq: int
    valid_until: datetime


class AccessEntry(BaseModel):
    """One access: which way, by what kind of credential, when. Never who."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    direction: str
    credential_kind: str
    occurred_at: datetime


class AccessRecorded(EventData):
    """A device's batch of new accesses (entries, exits, in-home activity), one event per stored
    batch: which door and, for each access, which way, what kind of credential and when. Never who:
    no credential id, plate, household or person. A retried batch publishes only what was new."""

    event_type = "security.access.recorded.v1"
    community: str
    device_id: str
    building_id: str
    entries: list[AccessEntry]
    # The batch's counts, for consumers that count (the city's daily figures) without the times.
    in_count: int
    out_count: int
    activity_count: int


class AlarmRaised(EventData):
    """An alarm, once per incident: property opens one urgent ticket, notify tells the steward (and,
    for an inactivity watch, the consenting relative)."""

    event_type = "security.alarm.raised.v1"
    alarm_id: str
    community: str
    kind: str
    building_id: str
    device_id: str | None
    steward_id: str | None
    relative_id: str | None
    raised_at: datetime


class AlarmAcknowledged(EventData):
    """Staff answered an alarm, once per alarm: the city's median response time counts
    `response_s`. Names no resident; the staff member who answered stays inside the platform."""

    event_type = "security.alarm.acknowledged.v1"
    alarm_id: str
    community: str
    kind: str
    building_id: str
    raised_at: datetime
    acknowledged_at: datetime
    acknowledged_by: str
    response_s: int


class AlarmCleared(EventData):
    """An alarm's cause is over (for an inactivity watch: the household moved again)."""

    event_type = "security.alarm.cleared.v1"
    alarm_id: str
    community: str
    kind: str
    building_id: str
    cleared_at: datetime


# --- read from property ---------------------------------------------------------------------------


class ResidentRegistered(EventData):
    event_type = "property.resident.registered.v1"
    resident_id: str
    community: str
    household_id: str
    building_id: str


class BuildingRegistered(EventData):
    event_type = "property.building.registered.v1"
    building_id: str
    community: str
    steward_id: str | None
