"""The events notify reads, as notify's own models: only the fields it uses (a consumer ignores the rest).

Notify publishes nothing: a notification is the end of the line.
"""

from __future__ import annotations

from datetime import date, datetime

from services.kit.envelope import EventData

TIMEBANK_TOPIC = "timebank.events"
PARKING_TOPIC = "parking.events"
PROPERTY_TOPIC = "property.events"
GOVERNANCE_TOPIC = "governance.events"
SECURITY_TOPIC = "security.events"


class CareRequestCancelled(EventData):
    event_type = "timebank.care_request.cancelled.v1"
    request_id: str
    community: str
    elder_id: str
    volunteer_id: str | None
    service_type: str
    starts_at: datetime
    cancelled_by: str


class ServiceConfirmed(EventData):
    event_type = "timebank.service.confirmed.v1"
    transfer_id: str
    community: str
    volunteer_id: str
    minutes: int


class TransferReversed(EventData):
    event_type = "timebank.transfer.reversed.v1"
    transfer_id: str
    community: str
    volunteer_id: str
    minutes: int


class HoursExpired(EventData):
    event_type = "timebank.hours.expired.v1"
    transfer_id: str
    community: str
    member_id: str
    minutes: int
    valid_months: int


class CareRequestAccepted(EventData):
    event_type = "timebank.care_request.accepted.v1"
    request_id: str
    community: str
    elder_id: str
    requested_by: str
    volunteer_id: str
    service_type: str
    starts_at: datetime


class ServiceLogged(EventData):
    event_type = "timebank.service.logged.v1"
    transfer_id: str
    community: str
    elder_id: str
    requested_by: str
    minutes: int
    service_type: str
    confirm_by: datetime


class ServiceDisputed(EventData):
    """`reason` is the disputer's free text: notify neither keeps nor shows it."""

    event_type = "timebank.service.disputed.v1"
    transfer_id: str
    community: str
    volunteer_id: str
    minutes: int
    service_type: str
    disputed_by: str


class HoursGifted(EventData):
    event_type = "timebank.hours.gifted.v1"
    transfer_id: str
    community: str
    from_member_id: str
    to_member_id: str
    minutes: int


class HoursExpiring(EventData):
    event_type = "timebank.hours.expiring.v1"
    community: str
    member_id: str
    minutes: int
    expires_on: date
    valid_months: int


class RelativeVerified(EventData):
    event_type = "timebank.relative.verified.v1"
    community: str
    member_id: str
    relative_id: str


class BookingCompleted(EventData):
    event_type = "parking.booking.completed.v1"
    booking_id: str
    community: str
    owner_id: str | None
    booker_id: str | None
    fee_fen: int
    owner_share_fen: int


class BookingConfirmed(EventData):
    event_type = "parking.booking.confirmed.v1"
    booking_id: str
    community: str
    booker_id: str | None
    start: datetime
    end: datetime
    fee_fen: int


class BookingStartingSoon(EventData):
    event_type = "parking.booking.starting_soon.v1"
    booking_id: str
    community: str
    booker_id: str | None
    start: datetime


class BookingOverstayed(EventData):
    event_type = "parking.booking.overstayed.v1"
    booking_id: str
    community: str
    owner_id: str | None
    booker_id: str | None
    end: datetime


class BuildingRegistered(EventData):
    event_type = "property.building.registered.v1"
    building_id: str
    community: str
    steward_id: str | None
    backup_steward_id: str | None


class ResidentRegistered(EventData):
    """Carries the phone an SMS goes to; notify keeps it and never shows it."""

    event_type = "property.resident.registered.v1"
    resident_id: str
    community: str
    phone: str


class StaffRegistered(EventData):
    event_type = "property.staff.registered.v1"
    staff_id: str
    community: str
    roles: list[str]


class TicketSubmitted(EventData):
    event_type = "property.ticket.submitted.v1"
    ticket_id: str
    community: str
    category: str
    priority: str
    building_id: str
    resident_id: str | None  # None for a system-filed ticket (security's incidents)
    assignee_id: str | None


class TicketStatusChanged(EventData):
    event_type = "property.ticket.status_changed.v1"
    ticket_id: str
    community: str
    category: str
    status: str
    actor_id: str
    assignee_id: str | None


class TicketReassigned(EventData):
    event_type = "property.ticket.reassigned.v1"
    ticket_id: str
    community: str
    category: str
    priority: str
    assignee_id: str
    actor_id: str


class TicketCompleted(EventData):
    event_type = "property.ticket.completed.v1"
    ticket_id: str
    community: str
    category: str
    resident_id: str | None


class TicketSlaBreached(EventData):
    event_type = "property.ticket.sla_breached.v1"
    ticket_id: str
    community: str
    category: str
    kind: str
    assignee_id: str | None
    escalated_to: str = "property_admin"


class PaymentSettled(EventData):
    event_type = "property.payment.settled.v1"
    payment_id: str
    ticket_id: str
    community: str
    amount_fen: int
    status: str


class PointsGranted(EventData):
    event_type = "governance.points.granted.v1"
    grant_id: str
    community: str
    resident_id: str
    points: int


class RedemptionCaptured(EventData):
    event_type = "governance.redemption.captured.v1"
    redemption_id: str
    community: str
    resident_id: str
    points: int


class RedemptionReleased(EventData):
    event_type = "governance.redemption.released.v1"
    redemption_id: str
    community: str
    resident_id: str
    points: int


class AlarmRaised(EventData):
    """A security alarm: the building's steward and, for an inactivity watch, the consenting relative are told."""

    event_type = "security.alarm.raised.v1"
    alarm_id: str
    community: str
    kind: str
    building_id: str
    steward_id: str | None = None
    relative_id: str | None = None
    raised_at: datetime


class DeviceWentOffline(EventData):
    event_type = "security.device.offline.v1"
    device_id: str
    community: str
    building_id: str
    kind: str
    steward_id: str | None = None
    offline_since: datetime


class DeviceCameBack(EventData):
    event_type = "security.device.back_online.v1"
    device_id: str
    community: str
    building_id: str
    kind: str
    steward_id: str | None = None
    back_at: datetime
