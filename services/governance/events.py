"""Governance's events (topic `governance.events`) and the events it reads from other services."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "governance.events"
publisher = EventPublisher(source="/services/governance", topic=TOPIC)


# --- published -----------------------------------------------------------------------------------


class RedemptionReserved(EventData):
    """Points are held; property is asked to fulfil the service (key: redemption_id)."""

    event_type = "governance.redemption.reserved.v1"
    redemption_id: str
    community: str
    resident_id: str
    reward_id: str
    fulfilment: Literal["property"] = "property"
    service_code: str
    points: int
    quantity: int


class PointsGranted(EventData):
    """Points were credited to a resident (key: grant_id): by an earning rule (`source` "rule", with
    the rule's `trigger`) or by a worker's award (`source` "award", `trigger` "award"). Skipped,
    capped and duplicate grants publish nothing; deductions and clawbacks are not grants."""

    event_type = "governance.points.granted.v1"
    grant_id: str
    community: str
    resident_id: str
    points: int
    source: Literal["rule", "award"]
    trigger: str
    rule_id: str | None = None
    granted_at: datetime


class RedemptionCaptured(EventData):
    event_type = "governance.redemption.captured.v1"
    redemption_id: str
    community: str
    resident_id: str
    points: int
    ticket_id: str | None = None


class RedemptionReleased(EventData):
    event_type = "governance.redemption.released.v1"
    redemption_id: str
    community: str
    resident_id: str
    points: int
    reason: str


class PointsPaymentSettled(EventData):
    """Answer to property's points payment request (key: payment_id)."""

    event_type = "governance.points_payment.settled.v1"
    payment_id: str
    community: str
    status: Literal["captured", "rejected"]
    reason: str | None = None


class BallotCast(EventData):
    """A final ballot was cast (key: decision_id). Never the option or a name: the ballot is secret.
    `resident_id` is the voter (for a proxy: the owner), null for a worker's paper ballot."""

    event_type = "governance.ballot.cast.v1"
    ballot_id: str
    decision_id: str
    community: str
    kind: str
    channel: Literal["app", "proxy", "paper"]
    resident_id: str | None
    cast_at: datetime


class OptionCount(BaseModel):
    """One option's count in a closed decision: ballots, and for owners' decisions their area."""

    model_config = ConfigDict(frozen=True)
    option: str
    ballots: int
    area: int | None = None


class DecisionClosed(EventData):
    """A decision closed at its closing time (key: decision_id): the counts and the outcome, never
    names or receipts. Areas are hundredths of a square metre; null for household polls."""

    event_type = "governance.decision.closed.v1"
    decision_id: str
    community: str
    kind: str
    outcome: str
    winner: str | None = None
    roll_voters: int
    roll_area: int | None = None
    participating_voters: int
    participating_area: int | None = None
    options: list[OptionCount]
    closed_at: datetime


class PledgeOrdered(EventData):
    """A household's pledge to an offer that reached its minimum: property adds the offer to its
    catalogue (once, by `service_code`) and opens one order for the household, paid through the
    paid-service path (money or points); key: `pledge_id` (offer:household), one order per key."""

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


class PledgeOfferSettled(EventData):
    """An offer's outcome (key: offer_id): `reached` (the minimum met before the deadline; each
    pledge became an order) or `lapsed` (the deadline passed short of it; nothing is charged)."""

    event_type = "governance.pledge_offer.settled.v1"
    offer_id: str
    community: str
    outcome: Literal["reached", "lapsed"]
    service_code: str
    min_households: int
    households: int
    settled_at: datetime


# --- consumed (only the fields governance needs; the rest is ignored) ----------------------------


class ServiceConfirmed(EventData):
    event_type = "timebank.service.confirmed.v1"
    transfer_id: str
    community: str
    volunteer_id: str
    minutes: int
    confirmed_at: datetime | None = None


class TransferReversed(EventData):
    event_type = "timebank.transfer.reversed.v1"
    transfer_id: str
    reverses_transfer_id: str
    community: str
    reason: str | None = None


class BookingCompleted(EventData):
    event_type = "parking.booking.completed.v1"
    booking_id: str
    community: str
    owner_id: str
    completed_at: datetime | None = None


class ResidentRegistered(EventData):
    event_type = "property.resident.registered.v1"
    resident_id: str
    community: str
    household_id: str | None = None
    owner: bool = False


class ResidentOwnerChanged(EventData):
    event_type = "property.resident.owner_changed.v1"
    resident_id: str
    community: str
    household_id: str
    owner: bool


class HouseholdRegistered(EventData):
    event_type = "property.household.registered.v1"
    household_id: str
    community: str
    exclusive_area: int = 0
    sold: bool = True
    buyer_key: str | None = None


class HouseholdRollChanged(EventData):
    event_type = "property.household.roll_changed.v1"
    household_id: str
    community: str
    exclusive_area: int
    sold: bool
    buyer_key: str | None = None


class RedemptionFulfilled(EventData):
    event_type = "property.redemption.fulfilled.v1"
    redemption_id: str
    community: str
    ticket_id: str | None = None


class RedemptionFailed(EventData):
    event_type = "property.redemption.failed.v1"
    redemption_id: str
    community: str
    reason: str | None = None


class PointsPaymentRequested(EventData):
    event_type = "property.points_payment.requested.v1"
    payment_id: str
    community: str
    resident_id: str
    points: int
    order_id: str | None = None
