"""What citysync publishes: its own register events on `citysync.events`, and every feed record on
the city topics `city.<scene>.v1` (both through the outbox, in the transaction that made them)."""

from __future__ import annotations

from datetime import datetime

from services.kit.envelope import EventData
from services.kit.outbox import EventPublisher

TOPIC = "citysync.events"
SOURCE = "/services/citysync"
publisher = EventPublisher(source=SOURCE, topic=TOPIC)


def city_topic(scene: str) -> str:
    """The Kafka topic of one scene's feed, for consumers inside the government network."""
    return f"city.{scene}.v1"


def city_event_type(scene: str, record_type: str, schema_version: int) -> str:
    return f"city.{scene}.{record_type}.v{schema_version}"


class ConsumerRevoked(EventData):
    """A data consumer was revoked (key: consumer_id): the gateway may stop issuing it tokens."""

    event_type = "citysync.consumer.revoked.v1"
    consumer_id: str
    community: str
    revoked_at: datetime


class GrantRevoked(EventData):
    """A consumer's grant of one feed was revoked (key: consumer_id)."""

    event_type = "citysync.grant.revoked.v1"
    consumer_id: str
    community: str
    scene: str
    revoked_at: datetime
