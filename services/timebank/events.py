"""Events the time bank publishes on `timebank.events` (through the outbox)."""

from __future__ import annotations

from datetime import date, datetime

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


class CareRequestAccepted(EventData):
    """A volunteer took an open care request: the elder (and whoever asked for them) learns it is
    covered. Key: request_id, so it reaches consumers before the request's cancellation."""

    event_type = "timebank.care_request.accepted.v1"
    request_id: str
    community: str
    elder_id: str
    requested_by: str
    volunteer_id: str
    service_type: str
    starts_at: datetime
    accepted_at: datetime


class ServiceLogged(EventData):
    """A volunteer checked out: the served minutes wait, as a pending transfer, for the elder's side
    to confirm or dispute them before `confirm_by` (when the expiry job voids them). Key: request_id."""

    event_type = "timebank.service.logged.v1"
    transfer_id: str
    request_id: str
    community: str
    elder_id: str
    requested_by: str
    volunteer_id: str
    minutes: int
    service_type: str
    confirm_by: datetime


class ServiceDisputed(EventData):
    """The elder's side disputed a logged service: the pending transfer is void, nothing is paid.
    `reason` is free text and is not shown to the volunteer by notify. Key: request_id."""

    event_type = "timebank.service.disputed.v1"
    transfer_id: str
    pending_transfer_id: str
    request_id: str
    community: str
    elder_id: str
    volunteer_id: str
    minutes: int
    service_type: str
    disputed_by: str
    reason: str


class HoursGifted(EventData):
    """A member gave hours to a verified relative. Key: transfer_id."""

    event_type = "timebank.hours.gifted.v1"
    transfer_id: str
    community: str
    from_member_id: str
    to_member_id: str
    minutes: int


class HoursExpiring(EventData):
    """Some of a member's hours will expire on `expires_on` (local date) unless they are spent first:
    published once per (member, day) by the warning job, `WARN_DAYS` (30) ahead. Key: member_id."""

    event_type = "timebank.hours.expiring.v1"
    community: str
    member_id: str
    minutes: int
    expires_on: date
    valid_months: int


class RelativeVerified(EventData):
    """A community worker verified that two members are family (the link holds both ways). notify
    keeps it, so an elder who asks for it has copies of their time-bank messages sent to their
    verified relatives. Published once, when the link is new. Key: member_id."""

    event_type = "timebank.relative.verified.v1"
    community: str
    member_id: str
    relative_id: str
    verified_at: datetime
