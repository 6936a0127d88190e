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
