"""Parking's events, published through the outbox to `parking.events` (key: booking id)."""

from __future__ import annotations

from datetime import datetime

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "parking.events"
publisher = EventPublisher(source="/services/parking", topic=TOPIC)


class BookingCompleted(EventData):
    """A booked window was used and the car has left; governance turns it into the owner's points."""

    event_type = "parking.booking.completed.v1"
    booking_id: str
    community: str
    spot_id: str
    owner_id: str | None  # None for the community's public spots
    booker_id: str | None
    start: datetime
    end: datetime
    fee_fen: int  # booking fee plus any overstay, in fen
    owner_share_fen: int
    completed_at: datetime


class BookingConfirmed(EventData):
    """A hold was paid and the booking is the booker's. No plate: a message needs none."""

    event_type = "parking.booking.confirmed.v1"
    booking_id: str
    community: str
    spot_id: str
    owner_id: str | None
    booker_id: str | None
    start: datetime
    end: datetime
    fee_fen: int
    confirmed_at: datetime


class BookingStartingSoon(EventData):
    """A confirmed booking starts within the reminder lead (15 minutes); published once per booking
    by the `remind-bookings` job."""

    event_type = "parking.booking.starting_soon.v1"
    booking_id: str
    community: str
    spot_id: str
    booker_id: str | None
    start: datetime
    end: datetime


class BookingOverstayed(EventData):
    """A car is still parked after its booking ended (the spot's owner or the next booker may need
    it); an overstay fee accrues until it leaves. Published once per booking by `remind-bookings`."""

    event_type = "parking.booking.overstayed.v1"
    booking_id: str
    community: str
    spot_id: str
    owner_id: str | None
    booker_id: str | None
    end: datetime
    price_fen_per_30min: int


# --- read from security (only the fields parking uses) -------------------------------------------

SECURITY_TOPIC = "security.events"


class PassCarAllowed(EventData):
    event_type = "security.pass.car_allowed.v1"
    pass_id: str
    community: str
    plate: str
    valid_from: datetime
    valid_until: datetime
    max_entries: int | None


class PassRevoked(EventData):
    event_type = "security.pass.revoked.v1"
    pass_id: str
    community: str
