"""Events the time bank publishes on `timebank.events` (through the outbox)."""

from __future__ import annotations

from datetime import datetime

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "timebank.events"
publisher = EventPublisher(source="/services/timebank", topic=TOPIC)


class ServiceConfirmed(EventData):
    """A volunteer's service was confirmed and its minutes posted. Key: transfer_id (the posting)."""

    event_type = "timebank.service.confirmed.v1"
    transfer_id: str
    community: str
    volunteer_id: str
    elder_id: str
    minutes: int
    service_type: str
    confirmed_at: datetime


class TransferReversed(EventData):
    """A confirmed service transfer was corrected by a reversing transfer. Key: reverses_transfer_id,
    so it reaches consumers after the `service.confirmed` event it corrects."""

    event_type = "timebank.transfer.reversed.v1"
    transfer_id: str
    reverses_transfer_id: str
    community: str
    volunteer_id: str
    minutes: int
    reason: str


class HoursExpired(EventData):
    """Hours a member held longer than the community's validity period expired to the pool. Key: transfer_id."""

    event_type = "timebank.hours.expired.v1"
    transfer_id: str
    community: str
    member_id: str
    minutes: int
    valid_months: int
    expired_at: datetime


class CareRequestCancelled(EventData):
    """An elder, or someone acting for them, withdrew a care request before the service started.
    `volunteer_id` is the volunteer who had accepted it (null while it was still open): the one who
    must be told not to come. Key: request_id."""

    event_type = "timebank.care_request.cancelled.v1"
    request_id: str
    community: str
    elder_id: str
    volunteer_id: str | None
    service_type: str
    starts_at: datetime
    cancelled_by: str
    cancelled_at: datetime
