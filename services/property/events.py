"""Property's events on `property.events` (key: the aggregate id), and those it consumes."""

from __future__ import annotations

from datetime import datetime

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "property.events"
GOVERNANCE_TOPIC = "governance.events"
publisher = EventPublisher(source="/services/property", topic=TOPIC)


class BuildingRegistered(EventData):
    event_type = "property.building.registered.v1"
    building_id: str
    community: str
    code: str
    name: str
    steward_id: str | None
    backup_steward_id: str | None


class HouseholdRegistered(EventData):
    event_type = "property.household.registered.v1"
    household_id: str
    community: str
    building_id: str
    unit: str
    exclusive_area: int = 0
    sold: bool = True
    buyer_key: str | None = None


class HouseholdRollChanged(EventData):
    """What an owners' vote counts of a unit changed: its exclusive area (hundredths of a m²), whether
    it is sold, its buyer key. Decisions already open keep the roll they froze."""

    event_type = "property.household.roll_changed.v1"
    household_id: str
    community: str
    exclusive_area: int
    sold: bool
    buyer_key: str | None


class ResidentRegistered(EventData):
    """The gateway logs residents in by phone, so the phone travels here (and nowhere in logs)."""

    event_type = "property.resident.registered.v1"
    resident_id: str
    community: str
    household_id: str
    building_id: str
    name: str
    phone: str
    roles: list[str]
    owner: bool = False


class ResidentOwnerChanged(EventData):
    """A resident became an owner (业主) of their household or stopped being one (e.g. a sale, or a
    tenant recorded by mistake). Decisions already open keep the voters they froze."""

    event_type = "property.resident.owner_changed.v1"
    resident_id: str
    community: str
    household_id: str
    owner: bool


class StaffRegistered(EventData):
    event_type = "property.staff.registered.v1"
    staff_id: str
    community: str
    name: str
    username: str
    roles: list[str]
    buildings: tuple[str, ...] = ()
    backup_for: tuple[str, ...] = ()


class TicketSubmitted(EventData):
    event_type = "property.ticket.submitted.v1"
    ticket_id: str
    community: str
    category: str
    status: str
    service_code: str | None
    priority: str
    building_id: str
    # Both None for a system-filed ticket (`source` says whose): an alarm or a device outage.
    household_id: str | None
    resident_id: str | None
    source: str
    assignee_id: str | None
    routed_via: str
    response_due_at: datetime
    resolution_due_at: datetime
    submitted_at: datetime


class TicketStatusChanged(EventData):
    event_type = "property.ticket.status_changed.v1"
    ticket_id: str
    community: str
    category: str
    status: str
    from_status: str
    action: str
    role: str
    actor_id: str
    assignee_id: str | None
    at: datetime


class TicketReassigned(EventData):
    """A ticket was handed over or reassigned to another steward (besides its `status_changed`), so
    the steward now holding it is told. Key: ticket_id."""

    event_type = "property.ticket.reassigned.v1"
    ticket_id: str
    community: str
    category: str
    priority: str
    status: str
    from_assignee_id: str | None
    assignee_id: str
    actor_id: str
    at: datetime


class TicketCompleted(EventData):
    event_type = "property.ticket.completed.v1"
    ticket_id: str
    community: str
    category: str
    status: str
    assignee_id: str | None
    resident_id: str | None  # None for a system-filed ticket: nobody confirms it
    completed_at: datetime
    on_time: bool


class TicketSlaBreached(EventData):
    event_type = "property.ticket.sla_breached.v1"
    ticket_id: str
    community: str
    category: str
    status: str
    priority: str
    kind: str  # "response" or "resolution"
    due_at: datetime
    assignee_id: str | None
    escalated_to: str = "property_admin"


class RedemptionFulfilled(EventData):
    event_type = "property.redemption.fulfilled.v1"
    redemption_id: str
    community: str
    ticket_id: str


class RedemptionFailed(EventData):
    event_type = "property.redemption.failed.v1"
    redemption_id: str
    community: str
    reason: str


class PointsPaymentRequested(EventData):
    event_type = "property.points_payment.requested.v1"
    payment_id: str
    community: str
    resident_id: str
    points: int
    order_id: str


class PaymentSettled(EventData):
    event_type = "property.payment.settled.v1"
    payment_id: str
    community: str
    ticket_id: str
    method: str
    status: str
    amount_fen: int


# --- consumed from governance ------------------------------------------------------------------


class RedemptionReserved(EventData):
    event_type = "governance.redemption.reserved.v1"
    redemption_id: str
    community: str
    resident_id: str
    reward_id: str | None = None
    fulfilment: str
    service_code: str | None = None
    points: int = 0
    quantity: int = 1


class PointsPaymentSettled(EventData):
    event_type = "governance.points_payment.settled.v1"
    payment_id: str
    community: str
    status: str
    reason: str | None = None


class PledgeOrdered(EventData):
    event_type = "governance.pledge.ordered.v1"
    pledge_id: str
    offer_id: str
    community: str
    household_id: str
    resident_id: str
    service_code: str
    title: str
    provider: str
    price_fen: int


# --- read from security (only the fields property uses) ------------------------------------------

SECURITY_TOPIC = "security.events"


class AlarmRaised(EventData):
    event_type = "security.alarm.raised.v1"
    alarm_id: str
    community: str
    kind: str
    building_id: str
    device_id: str | None
    raised_at: datetime


class AlarmCleared(EventData):
    event_type = "security.alarm.cleared.v1"
    alarm_id: str
    community: str
    cleared_at: datetime


class DeviceWentOffline(EventData):
    event_type = "security.device.offline.v1"
    device_id: str
    community: str
    building_id: str
    kind: str
    offline_since: datetime


class DeviceCameBack(EventData):
    event_type = "security.device.back_online.v1"
    device_id: str
    community: str
    offline_since: datetime
    back_at: datetime
